"""Text from the daemon (user ids, words, questions, answers, errors) is shown literally, never as markup."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog, PromptDialog
from chatgpt_wecom.tui.screens.status import StatusScreen
from tests.daemon_runner import DaemonRunner
from tests.fakes.wecom import FakeWeCom
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for, wait_for_done


def options(box: OptionList) -> list[str]:
    return [str(box.get_option_at_index(i).id) for i in range(box.option_count)]


async def test_confirm_dialogs_show_words_and_users_literally(daemon: DaemonRunner) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        await client.add_words(["[/b]", "[vx]"])
        assert daemon.services is not None  # the control API refuses such an id; the config file's lists may hold one
        await daemon.services.policy.add_users("deny", ["[red]x"], "config")
        app = tui(daemon.settings.socket_path, screen="words")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            box = app.screen.query_one("#words-list", OptionList)
            await wait_for(pilot, lambda: sorted(options(box)) == ["[/b]", "[vx]"], "the words")

            box.highlighted = options(box).index("[/b]")
            await pilot.press("d")  # a closing tag as markup: MarkupError, and the app exits
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            text = screen_text(app)
            assert "Remove the sensitive word '[/b]'?" in text
            assert "Remove [y]" in text and "No [n]" in text  # the keys show on the buttons
            await pilot.press("n")
            await pilot.pause()

            box.highlighted = options(box).index("[vx]")
            await pilot.press("d")  # an unknown style as markup: the word would vanish from the question
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            assert "Remove the sensitive word '[vx]'?" in screen_text(app)
            await pilot.press("y")
            await wait_for(pilot, lambda: options(box) == ["[/b]"], "[vx] gone")
            assert (await client.words()).words == ["[/b]"]

            await pilot.press("2")  # Users
            deny = app.screen.query_one("#list-deny", OptionList)
            await wait_for(pilot, lambda: options(deny) == ["[red]x"], "the deny list")
            assert "[red]x" in screen_text(app)
            deny.focus()
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            assert "Remove '[red]x' from the deny list?" in screen_text(app)
            await pilot.press("y")
            await wait_for(pilot, lambda: options(deny) == [], "[red]x gone")
            assert (await client.lists()).deny == []
            assert app.is_running and app.return_code is None  # nothing crashed


async def test_live_quotas_and_history_show_user_text_literally(
    limited_daemon: DaemonRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = limited_daemon
    monkeypatch.setenv("HOME", str(tmp_path))
    user, question = "[b]eve/..", "what does [/i] mean?"
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await connected(pilot)
        await daemon.ask(user, question, 8001)
        await wait_for_done(client, user, 1, pilot)
        await wait_for(pilot, lambda: f"echo: {question}" in screen_text(app), "the answer on the Live page")
        text = screen_text(app)
        assert user in text and question in text

        await pilot.press("4")  # Quotas
        table = app.screen.query_one(DataTable)
        await wait_for(pilot, lambda: table.row_count == 1, "the usage table")
        assert user in screen_text(app)

        await pilot.press("5")  # History
        await pilot.press("slash")
        app.screen.query_one("#history-user", Input).value = user
        await pilot.press("enter")
        await wait_for(pilot, lambda: f"{user}: 1 exchanges" in screen_text(app), "the history title")
        await pilot.press("escape", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the export prompt")
        assert f"Export the history of {user} as Markdown to:" in screen_text(app)
        assert app.screen.query_one(Input).value == str(tmp_path / "history-_b_eve_...md")
        assert app.is_running and app.return_code is None


async def test_status_shows_an_error_with_brackets(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    # WeCom's own error messages carry brackets ("hint: [...]"); a Rich table would parse them as markup.
    wecom.fail("/cgi-bin/message/send", errcode=40003, errmsg="no such user [/v1/x] [vx]", times=10)
    await daemon.ask("bob", "hi", 7001)
    app = tui(daemon.settings.socket_path, screen="status")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, StatusScreen)
        await wait_for(pilot, lambda: page.status is not None and page.status.last_errors, "the delivery error")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "no such user [/v1/x] [vx]" in screen_text(app), "the error on screen")
        assert app.is_running and app.return_code is None


async def test_control_and_bidi_characters_are_spelled_out_never_sent_to_the_terminal(daemon: DaemonRunner) -> None:
    user, question = "m\x1b[2J\u202e", "hi\x1b]52;c;aGk=\x07 \x9b31m red\u202egnp.exe"
    raw = ("\x1b", "\x07", "\x9b", "\u202e")
    shown_user, shown_question = "m\\x1b[2J<U+202E>", "hi\\x1b]52;c;aGk=\\x07 \\x9b31m red<U+202E>gnp.exe"
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        assert daemon.services is not None  # the control API refuses such an id; a channel's or the config's may not
        await daemon.services.operator.playground(user, question, "control:test")
        await wait_for(pilot, lambda: f"echo: {shown_question}" in screen_text(app), "the answer on the Live page")
        await daemon.services.policy.add_users("deny", [user], "config")
        text = screen_text(app)
        assert shown_user in text and not [c for c in raw if c in text]

        await pilot.press("5")  # History: the user picked from this month's users
        users = app.screen.query_one("#history-users", OptionList)
        await wait_for(pilot, lambda: options(users) == [user], "the users of this month")
        await pilot.press("enter")
        await wait_for(pilot, lambda: f"{shown_user}: 1 exchanges" in screen_text(app), "the history title")
        text = screen_text(app)
        assert f"Q: {shown_question}" in text and not [c for c in raw if c in text]
        assert app.screen.query_one("#history-user", Input).value == shown_user  # the input echoes the pick

        await pilot.press("escape", "2")  # Users: the deny list
        deny = app.screen.query_one("#list-deny", OptionList)
        await wait_for(pilot, lambda: options(deny) == [user], "the deny list")
        text = screen_text(app)
        assert shown_user in text and not [c for c in raw if c in text]
        assert app.is_running and app.return_code is None
