"""The control client's reading of connection failures: nobody there, or no right to ask."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from chatgpt_wecom.client import ControlClient, DaemonNotRunning, NoAccess, _gone


def test_permission_denied_is_not_reported_as_a_stopped_daemon() -> None:
    path = Path("/run/x/control.sock")
    assert isinstance(_gone(path, PermissionError(errno.EACCES, "Permission denied")), NoAccess)
    wrapped = OSError(errno.ECONNRESET, "reset")
    wrapped.__cause__ = PermissionError(errno.EPERM, "Operation not permitted")
    assert "sudo -u" in str(_gone(path, wrapped))
    refused = _gone(path, ConnectionRefusedError(errno.ECONNREFUSED, "refused"))
    assert type(refused) is DaemonNotRunning and "not running" in str(refused)


async def test_a_missing_socket_means_not_running(tmp_path: Path) -> None:
    async with ControlClient(tmp_path / "none.sock") as client:
        with pytest.raises(DaemonNotRunning) as err:
            await client.status()
    assert not isinstance(err.value, NoAccess)
