"""Helpers for driving the operator UI against a real daemon on a temp socket (no mocked client)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from rich.console import Console
from textual.pilot import Pilot

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui import OperatorApp, make_app
from chatgpt_wecom.tui.formats import Formats
from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

# Reconnect and flush quickly: tests wait on conditions, so faster links mean faster tests.
FAST_LINK = {"min_delay": 0.05, "max_delay": 0.2, "flush_every": 0.05}
SIZE = (120, 40)


def tui(socket_path: Path, *, formats: Formats | None = None, **options: Any) -> OperatorApp:
    """The app as the CLI builds it, with a quick reconnect."""
    return make_app(socket_path, formats=formats, connection=FAST_LINK, **options)


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Let the app run until `predicate()` holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}\n--- screen ---\n{screen_text(pilot.app)}"
            )
        await pilot.pause(0.02)


def screen_text(app: OperatorApp | Any) -> str:
    """What the terminal shows right now, as plain text."""
    console = Console(width=app.size.width, record=True, color_system=None, file=open("/dev/null", "w"))  # noqa: SIM115
    with console.file:
        console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


async def connected(pilot: Pilot[Any]) -> None:
    """Wait until the app has reached the daemon."""
    app = pilot.app
    assert isinstance(app, OperatorApp)
    await wait_for(pilot, lambda: app.link.connected, "the app to connect")


async def wait_for_done(client: ControlClient, user: str, count: int, pilot: Pilot[Any]) -> None:
    """Wait until `count` exchanges of `user` are answered (as the daemon says)."""
    deadline = time.monotonic() + 10
    while True:
        items = await client.history(user)
        if len([x for x in items if x.answer is not None]) >= count:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{user} has {len(items)} exchanges, expected {count}")
        await pilot.pause(0.02)


@pytest.fixture
async def limited_daemon(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> AsyncIterator[DaemonRunner]:
    """A daemon with a daily quota (max_request=5), so usage is counted."""
    async with DaemonRunner(make_settings(tmp_path, wecom, model, max_request=5)) as runner:
        yield runner
