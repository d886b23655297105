"""Snapshots of the main pages (pytest-textual-snapshot), with deterministic content from a real daemon.

`snap_compare` runs the app in its own event loop, so it runs in a worker thread while this test's loop keeps
serving the daemon. The daemon's clock is fixed (FakeClock): exchange times, quota days and latencies are
the same on every run; the app formats clock times with a fixed formatter (`Formats(fixed_time=…)`).
Update with `pytest tests/tui/test_snapshots.py --snapshot-update` and review the SVGs.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC
from pathlib import Path
from typing import Any

import pytest
from textual.pilot import Pilot

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui import OperatorApp, make_app
from chatgpt_wecom.tui.formats import Formats
from chatgpt_wecom.tui.screens.live import LiveScreen
from tests.daemon_runner import FAST, DaemonRunner, FakeClock, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.tui.conftest import SIZE

NOW = 1_735_725_600.0  # 2025-01-01 10:00 UTC, 18:00 in Asia/Shanghai
FORMATS = Formats(tz=UTC, fixed_time="12:00:00")
NOWHERE = Path("/nonexistent/chatgpt-wecom/control.sock")

SnapCompare = Callable[..., bool]


@pytest.fixture
async def fixed_daemon(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> AsyncIterator[DaemonRunner]:
    """A daemon whose clock stands still, with a daily quota of 5."""
    settings = make_settings(tmp_path, wecom, model, max_request=5)
    async with DaemonRunner(settings, dataclasses.replace(FAST, clock=FakeClock(NOW))) as runner:
        yield runner


async def seed(daemon: DaemonRunner) -> None:
    """Lists, words and three answered questions."""
    async with ControlClient(daemon.settings.socket_path) as client:
        await client.add_users("allow", ["alice", "bob", "carol"], confirm=True)
        await client.add_users("deny", ["mallory"])
        await client.add_users("vip", ["boss"])
        await client.add_users("admin", ["root"])
        await client.add_words(["spam", "scam"])
        for n, (user, text) in enumerate([("alice", "hello"), ("alice", "what is 2+2?"), ("bob", "good morning")]):
            await daemon.ask(user, text, 7000 + n)
        deadline = time.monotonic() + 10
        while (await client.status()).open_messages:
            assert time.monotonic() < deadline, "the seeded messages were not answered"
            await asyncio.sleep(0.02)


async def until(pilot: Pilot[Any], predicate: Callable[[], object], timeout: float = 10.0) -> None:
    """Run the app until `predicate()` holds (inside run_before)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "the screen did not reach the state to snapshot"
        await pilot.pause(0.02)


async def snapshot(
    snap_compare: SnapCompare,
    socket_path: Path,
    screen: str,
    run_before: Callable[[Pilot[Any]], Awaitable[None]],
) -> bool:
    """Build the app with the CLI's factory in the snapshot thread, and compare."""

    def run() -> bool:
        app = make_app(socket_path, screen=screen, formats=FORMATS, connection={"min_delay": 0.05})
        return snap_compare(app, terminal_size=SIZE, run_before=run_before)

    return await asyncio.to_thread(run)


def link_up(pilot: Pilot[Any]) -> bool:
    app = pilot.app
    assert isinstance(app, OperatorApp)
    return app.link.connected


async def test_snapshot_disconnected(snap_compare: SnapCompare) -> None:
    """Live page, no daemon: the bar says none runs (its socket is missing) and the empty table."""

    async def ready(pilot: Pilot[Any]) -> None:
        app = pilot.app
        assert isinstance(app, OperatorApp)
        await until(pilot, lambda: "missing" in app.link.reason and app.link.gone)

    assert await snapshot(snap_compare, NOWHERE, "live", ready)


async def test_snapshot_live(snap_compare: SnapCompare, fixed_daemon: DaemonRunner) -> None:
    """Live page: three questions and their answers, as they arrive."""
    main_loop = asyncio.get_running_loop()

    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: link_up(pilot))
        # The daemon runs on the test's loop; ask there and wait here.
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(seed(fixed_daemon), main_loop))
        page = pilot.app.screen
        assert isinstance(page, LiveScreen)
        await until(pilot, lambda: [r.state for r in page.log_rows.rows.values()] == ["done"] * 3)

    assert await snapshot(snap_compare, fixed_daemon.settings.socket_path, "live", ready)


async def test_snapshot_users(snap_compare: SnapCompare, fixed_daemon: DaemonRunner) -> None:
    """Users page: the four lists."""
    await seed(fixed_daemon)

    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: "admin (1)" in str(pilot.app.screen.query_one("#list-admin").border_title))

    assert await snapshot(snap_compare, fixed_daemon.settings.socket_path, "users", ready)


async def test_snapshot_quotas(snap_compare: SnapCompare, fixed_daemon: DaemonRunner) -> None:
    """Quotas page: usage today against a limit of 5."""
    await seed(fixed_daemon)

    async def ready(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: pilot.app.screen.query_one("#quota-table").row_count == 6)  # type: ignore[attr-defined]

    assert await snapshot(snap_compare, fixed_daemon.settings.socket_path, "quotas", ready)


async def test_snapshot_history(snap_compare: SnapCompare, fixed_daemon: DaemonRunner) -> None:
    """History page: alice's conversation, opened from the list of users."""
    await seed(fixed_daemon)

    async def ready(pilot: Pilot[Any]) -> None:
        users = pilot.app.screen.query_one("#history-users")
        await until(pilot, lambda: users.option_count == 6)  # type: ignore[attr-defined]
        await pilot.press("enter")
        await until(pilot, lambda: "alice: 2 exchanges" in str(pilot.app.screen.query_one("#history-title").content))  # type: ignore[attr-defined]

    assert await snapshot(snap_compare, fixed_daemon.settings.socket_path, "history", ready)
