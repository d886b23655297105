"""The control socket: a Unix socket, mode 0600 inside a 0700 folder, never a TCP port.

A socket file left by a crashed run (nothing answers on it) is replaced; one that answers belongs to a live
daemon and is not stolen — starting a second daemon on the same data is a clear error instead.
"""

from __future__ import annotations

import contextlib
import os
import socket
import stat
from pathlib import Path

from aiohttp import web

MAX_SOCKET_PATH = 107  # bytes of sun_path on Linux, less the terminating NUL


class ControlSocketError(Exception):
    """The control socket cannot be created; the message says why and what to do."""


def _answers(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError:
            return False
        return True


def prepare_socket_path(path: Path) -> None:
    """Make the folder (0700), refuse a live socket, remove a stale one."""
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ControlSocketError(
            f"control socket path {path} is longer than {MAX_SOCKET_PATH} bytes; set control_socket to a shorter path"
        )
    folder = path.parent
    folder.mkdir(parents=True, exist_ok=True)
    if folder.stat().st_uid == os.getuid():
        folder.chmod(0o700)
    if path.exists() or path.is_symlink():
        if not stat.S_ISSOCK(path.lstat().st_mode):
            raise ControlSocketError(f"{path} exists and is not a socket; remove it or set control_socket")
        if _answers(path):
            raise ControlSocketError(
                f"another chatgpt-wecom is already running with control socket {path} (stop it first)"
            )
        path.unlink()


async def start_control_site(runner: web.AppRunner, path: Path) -> web.UnixSite:
    """Serve `runner` on `path` with mode 0600 (created under a 0177 umask, so never briefly wider)."""
    prepare_socket_path(path)
    site = web.UnixSite(runner, str(path))
    old = os.umask(0o177)
    try:
        await site.start()
    finally:
        os.umask(old)
    path.chmod(0o600)  # noqa: ASYNC240 - one syscall at start-up
    return site


def remove_socket(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
