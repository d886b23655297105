"""Users, Words and Quotas pages: every change goes through a dialog and reaches the real daemon."""

from __future__ import annotations

from textual.widgets import DataTable, Input, OptionList

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog, PromptDialog
from tests.daemon_runner import DaemonRunner
from tests.fakes.wecom import FakeWeCom
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for, wait_for_done


def options(box: OptionList) -> list[str]:
    return [str(box.get_option_at_index(i).id) for i in range(box.option_count)]


async def test_users_add_asks_first_and_changes_the_daemons_policy(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    app = tui(daemon.settings.socket_path, screen="users")
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await connected(pilot)
        await pilot.press("right")  # allow → deny
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the user id prompt")
        await pilot.press(*"mallory", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        assert "Add 'mallory' to the deny list?" in screen_text(app)
        await pilot.press("n")  # declined: nothing changes
        await pilot.pause()
        assert (await client.lists()).deny == []

        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the user id prompt")
        await pilot.press(*"mallory", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        await pilot.press("y")
        deny = app.screen.query_one("#list-deny", OptionList)
        await wait_for(pilot, lambda: options(deny) == ["mallory"], "mallory in the deny list on screen")
        assert (await client.lists()).deny == ["mallory"]
        assert "deny (1)" in screen_text(app)
        # The policy is live: mallory is refused, not answered by the model.
        await daemon.ask("mallory", "hello?", 4001)
        await wecom.wait_for_sent(1, user="mallory")
        [reply] = wecom.texts_to("mallory")
        assert "没有使用这个应用的权限" in reply


async def test_users_remove_asks_first(daemon: DaemonRunner) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        await client.add_users("vip", ["alice", "bob"])
        app = tui(daemon.settings.socket_path, screen="users")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            vip = app.screen.query_one("#list-vip", OptionList)
            await wait_for(pilot, lambda: options(vip) == ["alice", "bob"], "the vip list")
            await pilot.press("right", "right", "down")  # → vip, highlight bob
            assert app.focused is vip
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            assert "Remove 'bob' from the vip list?" in screen_text(app)
            await pilot.press("escape")  # cancelled
            await pilot.pause()
            assert (await client.lists()).vip == ["alice", "bob"]
            await pilot.press("d")
            await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
            await pilot.press("y")
            await wait_for(pilot, lambda: options(vip) == ["alice"], "bob gone from the screen")
            assert (await client.lists()).vip == ["alice"]


async def test_users_page_follows_changes_made_elsewhere(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path, screen="users")
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await connected(pilot)
        admin = app.screen.query_one("#list-admin", OptionList)
        await client.add_users("admin", ["root"])  # e.g. `chatgpt-wecom ctl` in another terminal
        await wait_for(pilot, lambda: options(admin) == ["root"], "the change to show (policy.changed)")


async def test_words_add_and_remove(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path, screen="words")
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await connected(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the words prompt")
        await pilot.press(*"spam, scam,ham", "enter")
        box = app.screen.query_one("#words-list", OptionList)
        await wait_for(pilot, lambda: sorted(options(box)) == ["ham", "scam", "spam"], "three words")
        assert sorted((await client.words()).words) == ["ham", "scam", "spam"]
        await pilot.press("slash", *"sc", "enter")  # filter, then back to the list
        await wait_for(pilot, lambda: options(box) == ["scam"], "the filter")
        assert app.focused is box
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        assert "Remove the sensitive word 'scam'?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: options(box) == [], "scam gone")
        assert sorted((await client.words()).words) == ["ham", "spam"]
        app.screen.query_one("#words-filter", Input).value = ""
        await wait_for(pilot, lambda: sorted(options(box)) == ["ham", "spam"], "the rest")


async def test_quotas_reset_one_then_all(limited_daemon: DaemonRunner) -> None:
    daemon = limited_daemon
    for n, user in enumerate(["alice", "alice", "bob"]):
        await daemon.ask(user, f"q{n}", 5000 + n)
    app = tui(daemon.settings.socket_path, screen="quotas")
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await wait_for_done(client, "alice", 2, pilot)
        await wait_for_done(client, "bob", 1, pilot)
        await connected(pilot)
        table = app.screen.query_one(DataTable)

        def used() -> dict[str, str]:
            return {str(table.get_row_at(i)[0]): str(table.get_row_at(i)[1]) for i in range(table.row_count)}

        await wait_for(pilot, lambda: used() == {"alice": "2/5", "bob": "1/5"}, "the usage table")
        assert "5 questions a day" in screen_text(app)
        assert str(table.get_row_at(table.cursor_row)[0]) == "alice"  # most used first
        await pilot.press("r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        assert "Give 'alice' a fresh quota for today?" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: used() == {"alice": "0/5", "bob": "1/5"}, "alice reset")
        assert {u.user_id: u.used_today for u in (await client.quotas()).users} == {"alice": 0, "bob": 1}
        await pilot.press("R")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        assert "EVERY user" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: used() == {"alice": "0/5", "bob": "0/5"}, "everyone reset")
        assert all(u.used_today == 0 for u in (await client.quotas()).users)


async def test_the_first_entry_of_an_empty_allow_list_is_confirmed_with_its_consequence(daemon: DaemonRunner) -> None:
    app = tui(daemon.settings.socket_path, screen="users")
    async with app.run_test(size=SIZE) as pilot, ControlClient(daemon.settings.socket_path) as client:
        await connected(pilot)
        await pilot.press("a")  # the allow list has the focus
        await wait_for(pilot, lambda: isinstance(app.screen, PromptDialog), "the user id prompt")
        await pilot.press(*"alice", "enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog), "the confirmation")
        assert "only the users on it and admins may" in screen_text(app)
        await pilot.press("y")
        allow = app.screen.query_one("#list-allow", OptionList)
        await wait_for(pilot, lambda: options(allow) == ["alice"], "alice in the allow list on screen")
        assert (await client.lists()).allow == ["alice"]
