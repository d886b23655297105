"""Demo mode: the real daemon against a built-in WeCom stand-in, so a newcomer can talk to the bot at once.

* `standins` — the WeCom API stand-in and the echo model (small aiohttp servers on 127.0.0.1);
* `aibot` — the AI bot (智能机器人) stand-in: the WebSocket the daemon dials, and a chat window in the browser;
* `server` — `python -m chatgpt_wecom.demo.server --dir DIR`: the stand-ins and `serve()` in one process;
* `ports` — a port for the demo's daemon (and the tests' daemons) that no other process takes in the meantime;
* `launcher` — `chatgpt-wecom demo` (what `make run` starts without a config.yml): the server as a child
  process, then the TUI on the Playground; the TUI process never imports the daemon.

This module is imported by both sides, so it holds only what they share and imports nothing heavy.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

__all__ = ["DEMO_ADMIN", "DEMO_CORP_ID", "ECHO_MODEL", "MAX_SOCKET_PATH", "demo_socket_path"]

DEMO_CORP_ID = "wwdemo0000000000"
DEMO_ADMIN = "playground"  # the TUI Playground's default user: an admin in the demo, to try #查对话 and the rest
ECHO_MODEL = "demo-echo"  # the echo model's name, as the daemon's status shows it
MAX_SOCKET_PATH = 107  # bytes of an AF_UNIX path on Linux (as in daemon.control.site)


def demo_socket_path(data_dir: Path) -> Path:
    """The demo's control socket: `<data_dir>/control.sock`, or — when that path is too long for a Unix
    socket — a short one under the temp folder, unique to this user and this data folder."""
    data_dir = data_dir.resolve()
    path = data_dir / "control.sock"
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(data_dir)).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"chatgpt-wecom-demo-{os.getuid()}-{digest}" / "control.sock"
