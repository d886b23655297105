"""The Live page, the link to the daemon (reconnects) and event coalescing, against a real daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
from textual.notifications import Notify
from textual.widgets import DataTable, Static

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Feedback
from chatgpt_wecom.tui import make_app
from chatgpt_wecom.tui.connection import LinkDown
from chatgpt_wecom.tui.screens.live import LiveScreen
from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for


def live_page(app: object) -> LiveScreen:
    page = app.pages["live"]  # type: ignore[attr-defined]
    assert isinstance(page, LiveScreen)
    return page


async def test_live_shows_question_answer_latency_and_tokens(daemon: DaemonRunner, model: FakeModel) -> None:
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await daemon.ask("alice", "what is the capital of France?", 1001)
        page = live_page(app)
        await wait_for(pilot, lambda: any(r.state == "done" for r in page.log_rows.rows.values()), "the answer")
        table = page.query_one(DataTable)
        assert table.row_count == 1
        _, user, where, question, answer, state, latency, tokens = map(str, table.get_row_at(0))
        assert (user, where, question) == ("alice", "wecom", "what is the capital of France?")
        assert answer == "echo: what is the capital of France?"
        assert state == "done"
        assert latency.endswith("s")
        [request] = model.requests
        prompt = sum(len(str(m.get("content", ""))) for m in request.messages)
        assert tokens == f"{prompt}+{len(answer)}"  # the fake counts characters
        # on screen, in the detail pane (rendered as Markdown: it is mounted a moment later)
        await wait_for(pilot, lambda: "echo: what is the capital of France?" in screen_text(app), "the detail")
        text = screen_text(app)
        assert "● connected" in text


async def test_live_rows_say_which_channel_and_group_a_message_came_from(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel()
    group = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="  # a DingTalk-like conversation id: long, cut in the column
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        app = tui(settings.socket_path)
        async with app.run_test(size=(80, 24)) as pilot:  # the narrowest terminal the page is made for
            await connected(pilot)
            await daemon.ask("alice", "from the WeCom app", 4001)
            await memory.receive("bob", "技术群里的问题", chat=group)
            await memory.receive("carol", "a private one")
            page = live_page(app)
            table = page.query_one(DataTable)
            rows = page.log_rows.rows
            await wait_for(pilot, lambda: [r.state for r in rows.values()] == ["done"] * 3, "the three answers")
            assert [str(table.get_row_at(i)[2]) for i in range(3)] == ["wecom", "memory · cid6Ke…", "memory"]
            lines = screen_text(app).splitlines()
            head = next(line for line in lines if line.split()[:1] == ["time"])
            assert head.split() == ["time", "user", "from", "question", "answer", "state"]  # all six fit in 80 columns
            row = next(line for line in lines if line.split()[1:2] == ["bob"])
            assert row.split()[1:5] == ["bob", "memory", "·", "cid6Ke…"]
            await pilot.press("up")  # the group's row: its detail names the chat whole
            detail = page.query_one("#live-detail-head", Static)
            await wait_for(pilot, lambda: str(detail.content).startswith("#2 bob"), "bob's detail")
            assert str(detail.content).splitlines()[0].startswith(f"#2 bob · memory · in {group} · ")


async def test_live_filters_by_user(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        for n, user in enumerate(["alice", "bob", "alice"]):
            await daemon.ask(user, f"question {n} from {user}", 2000 + n)
        page = live_page(app)
        table = page.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 3, "three rows")
        await pilot.press("slash", "b", "o", "b")
        await wait_for(pilot, lambda: table.row_count == 1, "the filter to apply")
        assert str(table.get_row_at(0)[1]) == "bob"
        assert "1 of 3 messages" in screen_text(app)
        # Rows arriving while filtered only show when they match.
        await daemon.ask("alice", "yet another", 2010)
        await daemon.ask("bob", "bob again", 2011)
        await wait_for(pilot, lambda: len(page.log_rows) == 5 and table.row_count == 2, "bob's second row")
        assert [str(table.get_row_at(i)[1]) for i in range(2)] == ["bob", "bob"]
        await pilot.press("escape")  # back to the table: keys act on the page again
        assert app.focused is table
        page.query_one("#live-filter").value = ""  # type: ignore[attr-defined]
        await wait_for(pilot, lambda: table.row_count == 5, "all rows again")


async def test_reconnects_when_the_daemon_starts_and_restarts(settings: Settings) -> None:
    app = tui(settings.socket_path)  # nothing listens there yet
    async with app.run_test(size=SIZE) as pilot:
        # No socket: the bar says no daemon runs (not "reconnecting…" forever) and names the missing socket.
        await wait_for(pilot, lambda: "the daemon is not running" in screen_text(app), "the disconnected bar")
        assert app.link.reason == f"socket {settings.socket_path} missing" and "missing) — still trying" in screen_text(
            app
        )
        async with DaemonRunner(settings) as daemon:
            await wait_for(pilot, lambda: "● connected" in screen_text(app), "the app to connect by itself")
            await daemon.ask("alice", "first life", 3001)
            await wait_for(pilot, lambda: len(live_page(app).log_rows) == 1, "the first message")
        await wait_for(pilot, lambda: "the daemon is not running" in screen_text(app), "the daemon to be missed")
        async with DaemonRunner(settings) as daemon:
            await wait_for(pilot, lambda: app.link.connected, "the app to reconnect")
            await daemon.ask("alice", "second life", 3002)  # events flow again on the new stream
            await wait_for(pilot, lambda: len(live_page(app).log_rows) == 2, "a message after the restart")


async def test_a_burst_of_events_is_coalesced_and_the_ui_stays_responsive(daemon: DaemonRunner) -> None:
    # The production flush interval: the point is what the operator gets.
    app = make_app(daemon.settings.socket_path, connection={"min_delay": 0.05}, live_limit=100)
    batches: list[int] = []
    async with app.run_test(size=SIZE, message_hook=lambda m: _count_batches(m, batches)) as pilot:
        await connected(pilot)
        page = live_page(app)
        table = page.query_one(DataTable)
        async with ControlClient(daemon.settings.socket_path) as client:
            # 15 members, 20 messages each: within WeCom's 30 a minute per member, so nothing waits on the pace
            burst = asyncio.gather(*(client.playground(f"u{n % 15}", f"burst {n}") for n in range(300)))
            await pilot.press("2")  # keys are handled while events pour in
            await wait_for(pilot, lambda: app.current_mode == "users", "the Users page during the burst")
            await pilot.press("1")
            await wait_for(pilot, lambda: app.current_mode == "live", "the Live page during the burst")
            accepted = await burst
        assert len(accepted) == 300
        last = max(a.inbox_id for a in accepted)
        # The daemon shares this event loop with the app here, so give the pipeline time to drain.
        await wait_for(
            pilot,
            lambda: last in page.log_rows.rows and page.log_rows.rows[last].state == "done",
            "the last answer",
            timeout=60,
        )
        assert len(page.log_rows) == 100  # bounded: the oldest rows were evicted
        assert table.row_count == 100
        events = sum(batches)
        assert events >= 300 * 5  # received, started, finished, stored, sent, done per message
        assert len(batches) < events / 10  # coalesced: many events per message to the app


def _count_batches(message: object, batches: list[int]) -> None:
    from chatgpt_wecom.tui.connection import DaemonEvents

    if isinstance(message, DaemonEvents):
        batches.append(len(message.events) + message.dropped)  # dropped by the daemon for us: still published


async def test_refused_for_too_many_clients_says_so_and_connects_once_a_slot_frees(daemon: DaemonRunner) -> None:
    assert daemon.services is not None
    cap, sock = daemon.services.bus.max_subscribers, daemon.settings.socket_path
    toasts: list[str] = []
    downs: list[LinkDown] = []
    app = tui(sock)
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock), limit=0)) as http:
        held = [await http.get(f"http://daemon{p.API}/events") for _ in range(cap)]
        async with app.run_test(size=SIZE, message_hook=lambda m: _hook(m, toasts, downs)) as pilot:
            await wait_for(pilot, lambda: len(downs) >= 3, "a few refusals")  # the TUI keeps asking
            sentence = (
                f"the daemon refused: too many live-event clients: the daemon serves at most {cap} at once "
                "(TUIs and `ctl events`); close one and try again (too_many_clients)"
            )
            assert toasts == [sentence]  # the whole sentence, once
            text = screen_text(app)
            assert "○ disconnected — reconnecting… (the daemon refused: too many live-event clients" in text
            assert not app.link.connected
            held.pop().close()
            await connected(pilot)
            assert "● connected" in screen_text(app)
            assert toasts == [sentence]  # no "reconnected" / "lost the daemon" flapping on the way
        for resp in held:
            resp.close()


def _hook(message: object, toasts: list[str], downs: list[LinkDown]) -> None:
    if isinstance(message, Notify):
        toasts.append(message.notification.message)
    elif isinstance(message, LinkDown):
        downs.append(message)


async def test_a_users_verdict_on_an_answer_shows_in_live_history_and_status(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel()
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        services = daemon.services
        assert services is not None
        app = tui(settings.socket_path)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            inbox_id = await memory.receive("bob", "值得一个赞吗")
            page = live_page(app)
            rows = page.log_rows.rows
            await wait_for(pilot, lambda: inbox_id in rows and rows[inbox_id].state == "done", "the answer")
            row = await services.inbox.get(inbox_id)
            assert row is not None
            answer_id = row.dedupe_key.removeprefix("memory:")
            await services.intake.feedback(memory, Feedback(answer_id=answer_id, user_id="bob", rating="bad"))
            await wait_for(pilot, lambda: rows[inbox_id].feedback == "bad", "the verdict")
            table = page.query_one(DataTable)
            assert str(table.get_row_at(0)[5]) == "done 👎"
            async with ControlClient(settings.socket_path) as client:
                status = await client.status()
                [exchange] = await client.history("bob")
            assert status.feedback == {"good": 0, "bad": 1} and exchange.feedback == "bad"
            await pilot.press("7")
            await wait_for(pilot, lambda: "👍 0 · 👎 1" in screen_text(app), "the count on Status")

            # Taken back: no longer counted, no longer marked.
            await services.intake.feedback(memory, Feedback(answer_id=answer_id, user_id="bob", rating="cancelled"))
            await wait_for(pilot, lambda: rows[inbox_id].feedback is None, "the verdict taken back")
            async with ControlClient(settings.socket_path) as client:
                assert (await client.status()).feedback == {"good": 0, "bad": 0}
                assert (await client.history("bob"))[0].feedback is None
