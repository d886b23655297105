"""The TUI catches up on what it missed while its link to the daemon was down (`GET /v1/events?since=N`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
from textual.notifications import Notify

from chatgpt_wecom import protocol as p
from chatgpt_wecom.config import Settings
from chatgpt_wecom.tui import OperatorApp
from chatgpt_wecom.tui.screens.live import LiveScreen
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.tui.conftest import SIZE, connected, tui, wait_for


def live_page(app: OperatorApp) -> LiveScreen:
    page = app.pages["live"]
    assert isinstance(page, LiveScreen)
    return page


def hold_link(app: OperatorApp, monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Keep the app from reconnecting until the returned event is set (its first request waits on it)."""
    gate = asyncio.Event()
    status: Callable[[], Coroutine[Any, Any, p.Status]] = app.connection.client.status

    async def held() -> p.Status:
        await gate.wait()
        return await status()

    monkeypatch.setattr(app.connection.client, "status", held)
    return gate


async def cut_stream(app: OperatorApp) -> None:
    """Break the app's event stream under it, as a network hiccup would (the daemon stays up). Aborting the
    socket, not closing the session: aiohttp detaches a closed connection's reader, which would never end."""
    connector = app.connection.client._http().connector
    assert connector is not None
    streams = [proto.transport for proto in connector._acquired if proto.transport is not None]
    assert streams, "the app holds its event stream open"
    for transport in streams:
        transport.abort()


def rows(app: OperatorApp) -> list[tuple[str, str, str, str | None]]:
    return [(r.user, r.question, r.state, r.answer) for r in live_page(app).log_rows.rows.values()]


def toasts_into(toasts: list[str]) -> Callable[[object], None]:
    def hook(message: object) -> None:
        if isinstance(message, Notify):
            toasts.append(message.notification.message)

    return hook


async def test_what_was_answered_while_the_link_was_down_shows_once_it_is_back(
    daemon: DaemonRunner, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tui(daemon.settings.socket_path)
    toasts: list[str] = []
    async with app.run_test(size=SIZE, message_hook=toasts_into(toasts)) as pilot:
        await connected(pilot)
        await daemon.say("alice", "seen live")
        await wait_for(pilot, lambda: [r[2] for r in rows(app)] == ["done"], "alice's answer")
        gate = hold_link(app, monkeypatch)
        await cut_stream(app)  # the app cannot get back until the gate opens
        await wait_for(pilot, lambda: not app.connection.connected, "the link to go down")
        await daemon.say("bob", "asked while the TUI was away")
        await daemon.say("carol", "asked too")
        await pilot.pause(0.2)
        assert len(rows(app)) == 1  # nothing arrived while the link was down
        gate.set()
        await connected(pilot)
        await wait_for(pilot, lambda: [r[2] for r in rows(app)] == ["done"] * 3, "the missed answers")
        assert rows(app)[1:] == [
            ("bob", "asked while the TUI was away", "done", "echo: asked while the TUI was away"),
            ("carol", "asked too", "done", "echo: asked too"),
        ]
        assert live_page(app).query_one("#live-table").row_count == 3  # type: ignore[attr-defined]
        await daemon.say("dave", "live again")  # and the stream goes on live
        await wait_for(pilot, lambda: len(rows(app)) == 4 and rows(app)[3][2] == "done", "a live one after")
        assert not any("restarted" in t or "missed" in t for t in toasts)  # all of it was replayed


async def test_a_restarted_daemon_is_caught_up_from_its_own_numbering(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tui(settings.socket_path)
    toasts: list[str] = []
    async with app.run_test(size=SIZE, message_hook=toasts_into(toasts)) as pilot:
        async with DaemonRunner(settings) as first:
            await connected(pilot)
            for n in range(3):  # the old run's numbers run past the new run's: they must not be used there
                await first.say("alice", f"first life {n}")
            await wait_for(pilot, lambda: [r[2] for r in rows(app)] == ["done"] * 3, "the first answers")
            old_boot, old_last = app.connection.boot, app.connection.last_seq
            gate = hold_link(app, monkeypatch)
        await wait_for(pilot, lambda: not app.connection.connected, "the daemon to be missed")
        async with DaemonRunner(settings) as second:
            await second.say("bob", "answered before the TUI was back")
            assert second.services is not None
            assert second.services.bus.last_seq < old_last
            gate.set()
            await connected(pilot)
            await wait_for(pilot, lambda: len(rows(app)) == 4 and rows(app)[3][2] == "done", "bob's answer")
            assert rows(app)[3] == (
                "bob",
                "answered before the TUI was back",
                "done",
                "echo: answered before the TUI was back",
            )
            assert app.connection.boot == second.services.bus.boot != old_boot
            await wait_for(pilot, lambda: any("the daemon restarted" in t for t in toasts), "the restart said")
            await second.say("carol", "live after the restart")
            await wait_for(pilot, lambda: len(rows(app)) == 5 and rows(app)[4][2] == "done", "a live one after")


async def test_an_answer_finished_while_the_daemon_stopped_is_filled_in_after_the_restart(
    settings: Settings, model: FakeModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = tui(settings.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        async with DaemonRunner(settings) as first:
            await connected(pilot)
            model.set_delay(1.0)  # still answering when the stop begins; the stop waits for it (shutdown_grace)
            await first.ask("alice", "answered during the stop", 9101)
            await wait_for(pilot, lambda: [r[2] for r in rows(app)] == ["answering"], "the answer under way")
            gate = hold_link(app, monkeypatch)
        # The event stream closed when the stop began: the answer's events went to nobody, and a new run does not
        # have them.
        assert rows(app)[0][2] == "answering"
        model.set_delay(0.0)
        async with DaemonRunner(settings) as second:
            await second.idle()
            gate.set()
            await connected(pilot)
            said = "answered during the stop"
            await wait_for(pilot, lambda: rows(app)[0][3] == f"echo: {said}", "the stored answer filled in")
            assert rows(app)[0][2] in ("answered", "sent", "done")
            assert len(rows(app)) == 1
