"""History (read and export), Playground (round trip), Status, and the command palette, against a real daemon."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, Label, OptionList, Select, Static, TextArea

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui.formats import Formats
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog, PromptDialog
from chatgpt_wecom.tui.screens.history import HistoryScreen
from chatgpt_wecom.tui.screens.playground import PlaygroundScreen, Turn
from chatgpt_wecom.tui.screens.status import StatusScreen
from tests.daemon_runner import AGENT_ID, DaemonRunner, make_settings
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for, wait_for_done
from tests.wecom_callbacks import TEST_CORP_ID


async def test_history_shows_a_conversation_and_exports_it(
    daemon: DaemonRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "app"
    home.mkdir()
    elsewhere.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(elsewhere)  # e.g. /app in Docker, not writable: exports default to the home folder
    await daemon.ask("alice", "first question", 6001)
    await daemon.ask("alice", "second question", 6002)
    await daemon.ask("bob", "bob's question", 6003)
    app = tui(daemon.settings.socket_path, screen="history")
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await wait_for_done(client, "alice", 2, pilot)
        await wait_for_done(client, "bob", 1, pilot)
        await connected(pilot)
        page = app.screen
        assert isinstance(page, HistoryScreen)
        users = page.query_one("#history-users", OptionList)
        await pilot.press("ctrl+r")  # the answers may have come after the first load
        await wait_for(pilot, lambda: users.option_count == 2, "the users of the month")
        await pilot.press("enter")  # alice is first
        await wait_for(pilot, lambda: "alice: 2 exchanges" in screen_text(app), "alice's history")
        text = screen_text(app)
        assert "Q: first question" in text and "A: echo: first question" in text
        assert "Q: second question" in text and "bob's question" not in text

        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the export prompt")
        written = home / "history-alice.md"
        assert app.screen.query_one(Input).value == str(written)
        await pilot.press("enter")
        await wait_for(pilot, written.exists, "the export file")
        assert list(elsewhere.iterdir()) == []
        markdown = written.read_text(encoding="utf-8")
        assert markdown.startswith("# Conversation history of alice")
        assert "first question" in markdown and "echo: second question" in markdown
        assert f"wrote the history of alice to {written}" in str(page.query_one("#history-status", Static).content)

        # Exporting again to the same file asks before overwriting it; "no" leaves it as it was.
        written.write_text("the operator's notes\n", encoding="utf-8")
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the export prompt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the overwrite question")
        question = app.screen.query_one(".question", Label).content
        assert str(question) == f"{written} already exists. Overwrite it?"
        await pilot.press("n")
        status = page.query_one("#history-status", Static)
        await wait_for(pilot, lambda: f"kept {written} as it was" in str(status.content), "the refusal")
        assert written.read_text(encoding="utf-8") == "the operator's notes\n"
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the export prompt")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the overwrite question")
        await pilot.press("y")
        await wait_for(pilot, lambda: "first question" in written.read_text(encoding="utf-8"), "the overwrite")

        # Any user id can be typed, and another path given.
        await pilot.press("slash", *"bob", "enter")
        await wait_for(pilot, lambda: "bob: 1 exchanges" in screen_text(app), "bob's history")
        await pilot.press("escape", "e")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the export prompt")
        app.screen.query_one(Input).value = str(tmp_path / "out" / "bob.md")
        await pilot.press("enter")
        await wait_for(pilot, (tmp_path / "out" / "bob.md").exists, "bob's export in a new folder")


async def test_history_tags_a_group_and_another_namespace_not_a_private_wecom_chat(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel()
    group = "cid6KeBBLoveMJOGXoYKF5x7EeiodoA=="  # a DingTalk-like conversation id
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        await daemon.say("alice", "asked in WeCom")
        await memory.receive("alice", "asked in the group", chat=group)
        await memory.receive("alice", "asked in private")
        await daemon.idle()
        app = tui(settings.socket_path, screen="history", formats=Formats(fixed_time="12:00:00"))
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await pilot.press("slash", *"alice", "enter")
            await wait_for(pilot, lambda: "alice: 3 exchanges" in screen_text(app), "alice's history")
            lines = screen_text(app).splitlines()
            heads = [line.split("──", 1)[1].strip(" │") for line in lines if "── 12:00:00" in line]
            assert [re.sub(r" · \d+\+\d+( tokens)?$", "", head) for head in heads] == [  # "tokens" may wrap
                "12:00:00 · 单聊",
                f"12:00:00 · 单聊 · memory · in {group}",
                "12:00:00 · 单聊 · memory",
            ]
            # At 80 columns the heading wraps inside the log, the group's id whole, not cut at the border.
            await pilot.resize_terminal(80, 24)
            await pilot.press("escape", "ctrl+r")
            await wait_for(pilot, lambda: group in screen_text(app), "the group's id at 80 columns")


async def test_playground_round_trip(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    app = tui(daemon.settings.socket_path, screen="playground")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, PlaygroundScreen)
        assert "the answer is also SENT" in screen_text(app)
        assert app.focused is page.query_one("#play-text", TextArea)
        await wait_for(pilot, lambda: "on wecom" in screen_text(app), "the one channel named")
        assert not page.query("#play-channel")  # nothing to pick from
        await pilot.press(*"hello bot", "ctrl+s")
        await wait_for(pilot, lambda: any(t.answer for t in page.query(Turn)), "the answer")
        [turn] = page.query(Turn)
        assert turn.answer == "echo: hello bot"
        assert model.requests[-1].last_user_text == "hello bot"
        await wait_for(pilot, lambda: "echo: hello bot" in screen_text(app), "the answer on screen")
        assert "tokens" in screen_text(app)
        # As another user: the answer goes to that WeCom user for real.
        await pilot.press("shift+tab", *"carol", "enter")  # the user id is selected on focus; Enter → message
        assert app.focused is page.query_one("#play-text", TextArea)
        await pilot.press(*"hi as carol", "ctrl+s")
        await wecom.wait_for_sent(1, user="carol")
        assert wecom.texts_to("carol") == ["echo: hi as carol"]
        await wait_for(pilot, lambda: "carol · wecom ▶ hi as carol" in screen_text(app), "carol's turn")
        # Escape leaves the input, so the number keys switch pages again.
        await pilot.press("escape", "1")
        assert app.current_mode == "live"


async def test_playground_acts_as_a_user_of_the_channel_picked(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel()
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]):
        app = tui(settings.socket_path, screen="playground")
        async with app.run_test(size=(80, 24)) as pilot:
            await connected(pilot)
            page = app.screen
            assert isinstance(page, PlaygroundScreen)
            await wait_for(pilot, lambda: page.query("#play-channel"), "the channel picker")
            picker = page.query_one("#play-channel", Select)
            await wait_for(pilot, lambda: picker.value == "wecom", "the first channel, by default")
            assert page.channels == ["wecom", "memory"] and "on wecom" in screen_text(app)
            await pilot.press(*"hi there", "ctrl+s")
            await wecom.wait_for_sent(1, user="playground")
            await pilot.press("escape", "c")  # to the picker: open it, one down, take it
            assert app.focused is picker
            await pilot.press("enter", "down", "enter")
            await wait_for(pilot, lambda: picker.value == "memory", "memory picked")
            assert "on memory" in screen_text(app)
            await pilot.press("i", *"hi memory", "ctrl+s")
            await wait_for(pilot, lambda: memory.texts_to("playground") == ["echo: hi memory"], "memory's answer")
            await wait_for(pilot, lambda: "playground · memory ▶ hi memory" in screen_text(app), "the turn")
            assert [(t.channel, t.question) for t in page.query(Turn)] == [
                ("wecom", "hi there"),
                ("memory", "hi memory"),
            ]
            assert wecom.texts_to("playground") == ["echo: hi there"]  # memory's message did not go to WeCom
            await pilot.press("escape", "1")  # the Live page names the channel of each
            await wait_for(pilot, lambda: app.current_mode == "live", "the Live page")
            table = app.screen.query_one(DataTable)
            await wait_for(pilot, lambda: table.row_count == 2, "both messages")
            assert [str(table.get_row_at(i)[2]) for i in range(2)] == ["wecom", "memory"]


async def test_status_shows_model_and_which_secrets_are_set(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path, screen="status")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, StatusScreen)
        await wait_for(pilot, lambda: page.status is not None, "the status")
        text = screen_text(app)
        settings = daemon.settings
        assert settings.model in text
        assert page.status is not None and page.status.model_endpoint in text
        assert "answering" in text and "access token" in text
        assert page.status.secrets["api_key"] and not page.status.secrets["azure_openai_token"]
        for name, is_set in page.status.secrets.items():
            assert f"{'✓' if is_set else '✗'} {name}" in text
        for secret in (settings.api_key, settings.agent_secret, settings.receive_msg_key, settings.receive_msg_token):
            assert secret.get_secret_value() not in text


async def test_status_lists_each_channel_up_or_down_with_its_facts(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel(up=False)
    memory.state.reconnects, memory.state.last_error = 2, "the line is busy"
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]):
        app = tui(settings.socket_path, screen="status", formats=Formats(fixed_time="12:00:00"))
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await wait_for(pilot, lambda: "channels" in screen_text(app), "the channels section")
            lines = screen_text(app).splitlines()
    [wecom_line] = [line for line in lines if line.split()[:2] == ["wecom", "✓"]]
    assert wecom_line.split() == ["wecom", "✓", "up", "since", "12:00:00", "·", "0", "reconnects"]
    facts = lines[lines.index(wecom_line) + 1].split()
    assert facts == ["api_base", wecom.base_url, "·", "corp_id", TEST_CORP_ID, "·", "agent_id", str(AGENT_ID), "·",
                     "egress", "directly"]  # fmt: skip
    [memory_line] = [line for line in lines if line.split()[:1] == ["memory"]]
    assert memory_line.split("memory", 1)[1].strip() == "✗ DOWN · 2 reconnects · last error: the line is busy"
    assert lines[lines.index(memory_line) + 1].strip() == "kind in memory"
    assert any(line.split()[:3] == ["access", "token", "✗"] for line in lines)  # the WeCom token section stays


async def test_palette_pauses_and_resumes_the_bot(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path)
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await connected(pilot)
        await pilot.press("ctrl+p", *"pause the bot")
        await pilot.pause(0.3)  # the palette searches in the background
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        await wait_for(pilot, lambda: "BOT PAUSED" in screen_text(app), "the paused flag in the bar")
        assert (await client.status()).paused
        await pilot.press("7")  # Status: p toggles (resume needs no confirmation)
        await wait_for(pilot, lambda: "PAUSED — notice" in screen_text(app), "the status page")
        await pilot.press("p")
        await wait_for(pilot, lambda: "BOT PAUSED" not in screen_text(app), "the bot to resume")
        assert not (await client.status()).paused
        await pilot.press("ctrl+p", *"users page")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.current_mode == "users", "the Users page from the palette")
