"""The `chatgpt-wecom` command itself."""

from __future__ import annotations

import subprocess
import sys

from chatgpt_wecom import __version__


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chatgpt_wecom", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_version_option_prints_the_version_and_exits_0() -> None:
    option, command = _run("--version"), _run("version")
    assert (option.returncode, option.stdout, option.stderr) == (0, f"chatgpt-wecom {__version__}\n", "")
    assert (command.returncode, command.stdout) == (0, f"{__version__}\n")
