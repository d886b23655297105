"""`chatgpt-wecom demo`: start the demo daemon as a child process, then open the TUI on the Playground.

The daemon runs in its own process (`python -m chatgpt_wecom.demo.server`), so this process — the TUI's —
never imports daemon code, and the daemon's log goes to `<data_dir>/demo.log` instead of over the TUI. The
child's stdin is a pipe that only this process holds: if this process dies, even by `kill -9`, the pipe
closes and the demo daemon stops by itself.

Without a terminal (stdin or stdout not a TTY: CI, a pipe, `nohup`) there is no TUI: the daemon stays in the
foreground with its log on stdout, steerable with `chatgpt-wecom ctl --socket …`, until Ctrl-C or SIGTERM.
That keeps `make run` useful everywhere, and a script can still talk to the demo.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning
from chatgpt_wecom.demo import ECHO_MODEL, demo_socket_path

__all__ = ["READY_TIMEOUT", "STOP_TIMEOUT", "run_demo"]

READY_TIMEOUT = 60.0  # seconds for the demo daemon to answer on its socket
STOP_TIMEOUT = 30.0  # seconds after SIGTERM before SIGKILL; more than the daemon's 20 s grace
POLL = 0.1  # seconds between readiness probes
REAL_SETUP = "To set it up for real: cp config.example.yml config.yml, fill it in, then make run (see README.md)."


def _say(line: str = "") -> None:
    print(line, flush=True)


def run_demo(data_dir: Path, *, interactive: bool | None = None, ui: Callable[[Path], int] | None = None) -> int:
    """Run the demo with data in `data_dir` until the TUI is closed (or, without a terminal, until Ctrl-C or
    SIGTERM); the exit code. `interactive` defaults to whether stdin and stdout are terminals; `ui` (given the
    control socket, returning its exit code when the operator is done) defaults to the terminal UI on its
    Playground; a non-zero code from it (the UI crashed) is the demo's exit code."""
    data_dir = data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    socket_path = demo_socket_path(data_dir)
    if interactive is None:
        interactive = sys.stdin.isatty() and sys.stdout.isatty()
    if _answers(socket_path):
        _say(f"chatgpt-wecom demo: a demo is already running with its data in {data_dir} (socket {socket_path}).")
        _say("Stop it first, or use another --data-dir.")
        return 1
    log_path = data_dir / "demo.log"
    _say(f"DEMO MODE — starting the daemon against a built-in WeCom stand-in (data in {data_dir}) …")
    with _demo_daemon(data_dir, log_path if interactive else None) as proc:
        status = asyncio.run(_wait_ready(proc, socket_path))
        if status is None:
            _say(f"chatgpt-wecom demo: the demo daemon did not start (exit code {proc.poll()}).")
            if interactive:
                _say(_tail(log_path))
            return 1
        _say(f"DEMO MODE — model: {_model_line(status)}")
        if (page := aibot_page(status)) is not None:
            _say(f"DEMO MODE — the AI bot's chat window (the answer grows in place): {page}")
        if interactive:
            _say(f"DEMO MODE — opening the terminal UI on the Playground (Ctrl+Q quits); the log is in {log_path}")
            code = (ui or _run_tui)(socket_path)
            if code:
                _say(f"chatgpt-wecom demo: the terminal UI failed (exit code {code}); stopping the demo daemon.")
                return code
        else:
            _say("No terminal here, so no TUI: the demo daemon runs in the foreground (Ctrl-C stops it).")
            _say(f"From a terminal: chatgpt-wecom tui --socket {socket_path} --screen playground")
            _say(f"           or: chatgpt-wecom ctl --socket {socket_path} status")
            code = _wait_for_interrupt(proc)
            if code:
                _say(f"chatgpt-wecom demo: the demo daemon stopped with exit code {code}.")
                return code
    _say(f"Demo stopped. {REAL_SETUP}")
    return 0


@contextlib.contextmanager
def _demo_daemon(data_dir: Path, log_path: Path | None) -> Iterator[subprocess.Popen[bytes]]:
    """The demo server as a child in its own session, stopped on exit: SIGTERM, then SIGKILL if needed."""
    command = [sys.executable, "-m", "chatgpt_wecom.demo.server", "--dir", str(data_dir), "--stop-on-eof"]
    with contextlib.ExitStack() as stack:
        log: IO[bytes] | None = stack.enter_context(log_path.open("ab")) if log_path is not None else None
        proc = subprocess.Popen(  # noqa: S603 - our own module, run by this Python
            command,
            stdin=subprocess.PIPE,
            stdout=log,
            stderr=subprocess.STDOUT if log is not None else None,
            start_new_session=True,  # a Ctrl-C at the terminal reaches us only; we stop the daemon in order
        )
        try:
            yield proc
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, wait up to STOP_TIMEOUT, then SIGKILL. Ctrl-C while waiting goes straight to SIGKILL."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            proc.kill()
            proc.wait()
    if proc.stdin is not None:
        proc.stdin.close()


def _answers(socket_path: Path) -> bool:
    return asyncio.run(_status(socket_path)) is not None


async def _status(socket_path: Path) -> p.Status | None:
    try:
        async with ControlClient(socket_path, timeout=2.0) as client:
            return await client.status()
    except (DaemonNotRunning, ControlError, OSError, TimeoutError):
        return None


async def _wait_ready(proc: subprocess.Popen[bytes], socket_path: Path) -> p.Status | None:
    """The daemon's status as soon as it answers on its socket; None if it exits or READY_TIMEOUT passes."""
    deadline = time.monotonic() + READY_TIMEOUT
    while proc.poll() is None and time.monotonic() < deadline:
        status = await _status(socket_path)
        if status is not None:
            return status
        await asyncio.sleep(POLL)
    return None


def aibot_page(status: p.Status) -> str | None:
    """The demo AI bot's chat window: the page beside the WebSocket the daemon dialled (None without it)."""
    for channel in status.channels:
        url = str(channel.detail.get("ws_url", "")) if channel.name == "wecom_bot" else ""
        if url.startswith("ws://") and url.endswith("/ws"):
            return "http://" + url.removeprefix("ws://").removesuffix("ws")
    return None


def _model_line(status: p.Status) -> str:
    if status.model == ECHO_MODEL:
        return "the built-in echo model (it repeats what you say; set APIKEY for a real model)"
    return f"{status.model} at {status.model_endpoint} (from APIKEY in the environment)"


def _run_tui(socket_path: Path) -> int:
    from chatgpt_wecom.tui.app import run_tui  # noqa: PLC0415 - textual loads only when it is needed

    return run_tui(socket_path, screen="playground", title="chatgpt-wecom · DEMO (built-in WeCom stand-in)", demo=True)


def _wait_for_interrupt(proc: subprocess.Popen[bytes]) -> int:
    """Block until Ctrl-C or SIGTERM (0: the caller stops the daemon in order), or until the daemon exits by
    itself (its exit code)."""

    def terminate(_signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        _say("")
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return os.linesep.join(f"  | {line}" for line in text.splitlines()[-lines:])
