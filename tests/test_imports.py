"""Boundaries, enforced: the daemon never loads textual; the TUI, ctl and the client never load the daemon.

Each check imports in a fresh interpreter, so what other tests imported cannot hide a leak.
"""

from __future__ import annotations

import subprocess
import sys

import pytest


def _loaded_after(module: str) -> set[str]:
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    ["chatgpt_wecom.daemon.main", "chatgpt_wecom.daemon.services", "chatgpt_wecom.demo.server", "chatgpt_wecom.check"],
)
def test_the_daemon_never_loads_textual(module: str) -> None:
    assert not {m for m in _loaded_after(module) if m == "textual" or m.startswith("textual.")}


@pytest.mark.parametrize(
    "module",
    [
        "chatgpt_wecom.client",
        "chatgpt_wecom.protocol",
        "chatgpt_wecom.cli",
        "chatgpt_wecom.ctl",
        "chatgpt_wecom.tui",
        "chatgpt_wecom.demo.launcher",
        "chatgpt_wecom.visible",
    ],
)
def test_clients_never_load_the_daemon(module: str) -> None:
    assert not {m for m in _loaded_after(module) if m.startswith("chatgpt_wecom.daemon")}
