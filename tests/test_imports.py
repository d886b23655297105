"""Boundaries, enforced: the daemon never loads textual; the TUI, ctl and the client never load the daemon; chat/
decides without I/O; a channel's folder is imported only by itself and the registry.

Each check imports in a fresh interpreter, so what other tests imported cannot hide a leak.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "chatgpt_wecom"


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


CHAT = sorted(
    f"chatgpt_wecom.daemon.chat.{p.stem}" for p in (PACKAGE / "daemon" / "chat").glob("*.py") if p.stem != "__init__"
)


@pytest.mark.parametrize("module", CHAT)
def test_chat_decides_without_io(module: str) -> None:
    """chat/ is pure decisions: no HTTP, no SQL, no model client."""
    loaded = _loaded_after(module)
    assert not {m for m in loaded if m.split(".")[0] in ("aiohttp", "aiosqlite", "sqlite3", "openai", "httpx")}


def test_nothing_outside_a_channels_folder_imports_it() -> None:
    """A channel is one folder: only its own modules and channels/registry.py (which lists them all) import it."""
    channels = PACKAGE / "daemon" / "channels"
    folders = {p.name for p in channels.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        for name in _imported(path):
            parts = name.split(".")
            if parts[:3] == ["chatgpt_wecom", "daemon", "channels"] and len(parts) > 3 and parts[3] in folders:
                inside = path.is_relative_to(channels / parts[3]) or path == channels / "registry.py"
                if not inside:
                    offenders.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert folders and not offenders


def _imported(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module, *(f"{node.module}.{alias.name}" for alias in node.names)}
    return names
