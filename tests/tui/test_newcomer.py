"""What a newcomer tripped over (issue 13), against a real daemon: the Live and Playground pages show what the user
got (censored, and say so) in full as Markdown; the Playground takes several lines, sends a draft once and keeps it;
the footer and help; the Log page; times in the daemon's zone."""

from __future__ import annotations

import logging

from textual.containers import VerticalScroll
from textual.widgets import DataTable, Markdown, RichLog, TextArea

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui.screens import PAGES
from chatgpt_wecom.tui.screens.live import LiveScreen
from chatgpt_wecom.tui.screens.logs import LogScreen
from chatgpt_wecom.tui.screens.playground import PlaygroundScreen, Turn
from chatgpt_wecom.tui.widgets import LinkBar
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for

LONG = "**现在进入串聊模式**\n\n" + "\n".join(f"- item {n} of the list" for n in range(1, 41)) + "\n\nthe last line"


def live(app: object) -> LiveScreen:
    page = app.pages["live"]  # type: ignore[attr-defined]
    assert isinstance(page, LiveScreen)
    return page


async def test_a_censored_answer_shows_what_the_user_got_and_says_so(daemon: DaemonRunner, model: FakeModel) -> None:
    model.set_reply("这是秘密计划")
    async with ControlClient(daemon.settings.socket_path) as client:
        await client.add_words(["秘密"])
    app = tui(daemon.settings.socket_path, screen="playground")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, PlaygroundScreen)
        await pilot.press(*"plan?", "ctrl+s")
        await wait_for(pilot, lambda: any(t.answer for t in page.query(Turn)), "the answer")
        [turn] = page.query(Turn)
        assert turn.answer == "这是🚫计划" and turn.censored
        await wait_for(pilot, lambda: "这是🚫计划" in screen_text(app), "the censored answer on screen")
        text = screen_text(app)
        assert "censored: the user got 🚫" in text and "秘密" not in text
        await pilot.press("escape", "1")
        await wait_for(pilot, lambda: app.current_mode == "live", "the Live page")
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1 and "🚫" in str(table.get_row_at(0)[5]), "the row")
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[4] == "这是🚫计划" and row[5] == "done 🚫"  # the answer as sent; the mark on the state
        await wait_for(pilot, lambda: "这是🚫计划" in screen_text(app), "the detail pane")
        assert "censored: the user got 🚫" in screen_text(app) and "秘密" not in screen_text(app)


async def test_live_detail_shows_a_long_markdown_answer_in_full(daemon: DaemonRunner, model: FakeModel) -> None:
    model.set_reply(LONG)
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await daemon.ask("alice", "give me a list", 13001)
        page = live(app)
        await wait_for(pilot, lambda: "item 3 of" in detail_text(app), "the answer in the detail pane")
        body = page.query_one("#live-detail-body", Markdown)
        assert body.source == LONG  # whole, not four lines or a preview
        text = detail_text(app)
        assert "现在进入串聊模式" in text and "**" not in text  # rendered, not raw Markdown
        assert "the last line" not in text  # longer than the pane …
        pane = page.query_one("#live-detail", VerticalScroll)
        pane.focus()
        await pilot.press("end")  # … which scrolls
        await wait_for(pilot, lambda: "the last line" in screen_text(app), "the end of the answer")


async def test_playground_sends_a_multi_line_message_whole_and_streams_parts(
    daemon: DaemonRunner, model: FakeModel
) -> None:
    app = tui(daemon.settings.socket_path, screen="playground")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, PlaygroundScreen)
        message = "#解释代码\ndef f(x):\n    return x * 2\n"
        await pilot.press(*"#解释代码", "enter", *"def f(x):", "enter", *"    return x * 2")  # Enter: a new line
        area = page.query_one("#play-text", TextArea)
        assert area.text == message.rstrip("\n") and not model.requests  # nothing sent yet
        await pilot.press("ctrl+s")
        await model.wait_for_requests(1)
        assert "def f(x):\n    return x * 2" in model.requests[0].last_user_text
        assert area.text == ""  # the draft was taken


async def test_a_burst_of_the_send_key_sends_the_draft_once(daemon: DaemonRunner, model: FakeModel) -> None:
    app = tui(daemon.settings.socket_path, screen="playground")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, PlaygroundScreen)
        await pilot.press(*"only once", *["ctrl+s"] * 9)  # a laggy session delivers the key nine times at once
        await wait_for(pilot, lambda: any(t.answer for t in page.query(Turn)), "the answer")
        async with ControlClient(daemon.settings.socket_path) as client:
            history = await client.history("playground")
        assert [x.question for x in history] == ["only once"]
        assert len(page.query(Turn)) == 1 and len(model.requests) == 1


async def test_the_draft_survives_tab_and_a_page_switch(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path, screen="playground")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, PlaygroundScreen)
        area = page.query_one("#play-text", TextArea)
        assert app.focused is area
        await pilot.press(*"half a thought", "tab")
        assert area.text == "half a thought" and app.focused is page.query_one("#play-transcript")
        await pilot.press("tab", "tab")  # round the chain: user id, then the message again
        assert app.focused is area and area.text == "half a thought"
        await pilot.press("escape", "7")
        await wait_for(pilot, lambda: app.current_mode == "status", "the Status page")
        await pilot.press("6")
        await wait_for(pilot, lambda: app.current_mode == "playground", "the Playground again")
        assert app.screen.query_one("#play-text", TextArea).text == "half a thought"


async def test_footer_at_80_columns_offers_quit_and_help_and_escape_closes_help(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=(80, 24)) as pilot:
        await connected(pilot)
        wanted = ("f Follow", "^q Quit", "1…8 Pages", "? Help", "^p palette")

        def footer() -> str:
            lines = screen_text(app).splitlines()
            return lines[-1] if lines else ""

        await wait_for(pilot, lambda: all(item in footer() for item in wanted), "the whole footer in one line")
        for name in PAGES:  # every page's footer fits: its own keys, then quit, the pages and help, uncut
            await pilot.press("escape")
            app.action_page(name)
            await wait_for(pilot, lambda: app.current_mode == name, f"the {name} page")  # noqa: B023 - awaited here
            # The Playground opens in its message box, where 1–8 and ? are text: F1 is the help key there.
            keys = "^q Quit F1 Help " if name == "playground" else "^q Quit 1…8 Pages ? Help "
            await wait_for(pilot, lambda: keys in footer(), f"the {name} page's footer")  # noqa: B023 - awaited here
        app.action_page("live")
        await wait_for(pilot, lambda: app.current_mode == "live", "the Live page again")
        await pilot.press("question_mark")
        await wait_for(pilot, lambda: app.screen.query("HelpPanel"), "the keys panel")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.query("HelpPanel"), "the keys panel to close")
        await pilot.press("f1")
        await wait_for(pilot, lambda: app.screen.query("HelpPanel"), "the keys panel (F1)")
        await pilot.press("escape")
        await wait_for(pilot, lambda: not app.screen.query("HelpPanel"), "the keys panel to close again")
        # The Live table keeps its most useful columns at this width.
        await daemon.ask("alice", "narrow", 13002)
        await wait_for(pilot, lambda: live(app).query_one(DataTable).row_count == 1, "the row")
        head = next(line for line in screen_text(app).splitlines() if line.split()[:1] == ["time"])
        assert head.split() == ["time", "user", "from", "question", "answer", "state"]


async def test_log_page_shows_the_daemons_lines_and_filters_by_level(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path, screen="log")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, LogScreen)
        async with ControlClient(daemon.settings.socket_path) as client:
            await client.pause()  # the daemon logs a warning: "paused by control:…"
        logging.getLogger("chatgpt_wecom.test").error("an error for the log page")
        await wait_for(pilot, lambda: "an error for the log page" in screen_text(app), "the daemon's lines")
        assert "WARNING chatgpt_wecom.daemon.operator: paused by control" in screen_text(app)
        view = page.query_one(RichLog)
        await pilot.press("l", "l")  # INFO → WARNING → ERROR
        assert page.level == "ERROR"
        await wait_for(pilot, lambda: "paused by" not in screen_text(app), "warnings hidden")
        assert "an error for the log page" in screen_text(app) and view.lines
        await pilot.press("l")  # back round to DEBUG: everything
        await wait_for(pilot, lambda: "paused by" in screen_text(app), "warnings again")


async def test_times_are_in_the_daemons_zone_and_say_so(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await wait_for(pilot, lambda: "times in Asia/Shanghai" in screen_text(app), "the zone in the link bar")
        assert app.formats.zone == "Asia/Shanghai"
        assert app.formats.clock(1_735_725_600.0) == "18:00:00"  # 10:00 UTC
        assert "times in Asia/Shanghai" in str(app.screen.query_one(LinkBar).content)


def detail_text(app: object) -> str:
    """The screen below the Live table (the detail pane, the bars)."""
    lines = screen_text(app).splitlines()
    return "\n".join(lines[next(i for i, line in enumerate(lines) if line.lstrip().startswith("─")) :])


async def test_playground_shows_a_streamed_answer_part_by_part(daemon: DaemonRunner, model: FakeModel) -> None:
    """A long answer leaves in parts as it streams; the turn shows each part once delivered, before the whole."""
    paragraphs = [f"paragraph {n}: " + "字" * 500 for n in range(1, 5)]  # 1.5 KB each: one WeCom message apiece
    model.set_reply("\n\n".join(paragraphs))
    model.set_stream(chunk_chars=50, chunk_delay=0.03)
    app = tui(daemon.settings.socket_path, screen="playground")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, PlaygroundScreen)
        await pilot.press(*"a long one", "ctrl+s")
        await wait_for(pilot, lambda: any(t.delivered and t.answer is None for t in page.query(Turn)), "a part")
        [turn] = page.query(Turn)
        assert turn.delivered[0].startswith("paragraph 1: 字")
        await wait_for(pilot, lambda: "parts so far" in screen_text(app) or turn.answer is not None, "the progress")
        await wait_for(pilot, lambda: turn.answer is not None, "the whole answer")
        assert turn.answer == "\n\n".join(paragraphs)
