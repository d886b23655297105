"""History and Quotas offer every user the daemon knows (`GET /v1/users`), not only this month's, with a filter."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList

from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.tui.screens.history import HistoryScreen
from chatgpt_wecom.tui.screens.quotas import QuotasScreen
from tests.daemon_runner import FAST, DaemonRunner, FakeClock, make_settings
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for

NOW = 1_735_725_600.0  # 2025-01-01 10:00 UTC: January in Asia/Shanghai
LAST_MONTH = NOW - 20 * 86400  # December


@pytest.fixture
async def known(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> AsyncIterator[DaemonRunner]:
    """olga asked only last month; alice this month; 小明 (bob) wrote in a group; vera is only on a list."""
    memory = MemoryChannel()
    clock = FakeClock(LAST_MONTH)
    settings = make_settings(tmp_path, wecom, model, max_request=5, timezone="Asia/Shanghai")
    async with DaemonRunner(settings, dataclasses.replace(FAST, clock=clock), extra_channels=[memory]) as daemon:
        await daemon.say("olga", "a question in December")
        clock.now = NOW
        await daemon.say("alice", "a question in January")
        await memory.receive("bob", "hi from the group", chat="room-7", payload={"sender_nick": "小明"})
        await daemon.idle()
        async with ControlClient(settings.socket_path) as client:
            await client.add_users("vip", ["vera"])
            assert {u.user_id for u in (await client.quotas()).users} == {"alice", "bob"}  # no olga, no vera
        yield daemon


def ids(box: OptionList) -> list[str]:
    return [str(box.get_option_at_index(i).id) for i in range(box.option_count)]


async def test_history_offers_anyone_known_and_narrows_as_you_type(known: DaemonRunner) -> None:
    app = tui(known.settings.socket_path, screen="history")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, HistoryScreen)
        users = page.query_one("#history-users", OptionList)
        await wait_for(pilot, lambda: ids(users) == ["alice", "bob", "olga", "vera"], "everyone known")
        assert "bob · 小明 (memory)" in screen_text(app)  # the name the channel gave, and where the id is from
        await pilot.press("slash", *"小明")  # a name finds the user
        await wait_for(pilot, lambda: ids(users) == ["bob"], "the list narrowed to 小明")
        assert "users (1 of 4)" in screen_text(app)
        await pilot.press("enter")  # no user is called 小明: the one match is opened
        await wait_for(pilot, lambda: "bob: 1 exchanges" in screen_text(app), "bob's history")
        field = page.query_one("#history-user", Input)
        field.value = "OL"
        await wait_for(pilot, lambda: ids(users) == ["olga"], "the list narrowed to olga")
        users.focus()
        await pilot.press("enter")  # last month's user, picked from the list
        await wait_for(pilot, lambda: "olga: 1 exchanges" in screen_text(app), "olga's history")
        assert "Q: a question in December" in screen_text(app)
        assert field.value == "olga" and ids(users) == ["olga"]  # the pick is shown, the filter stays as it was


async def test_quotas_lists_anyone_known_and_can_reset_them(known: DaemonRunner) -> None:
    app = tui(known.settings.socket_path, screen="quotas")
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        page = app.screen
        assert isinstance(page, QuotasScreen)
        table = page.query_one(DataTable)

        def users() -> list[str]:
            return [str(table.get_row_at(i)[0]) for i in range(table.row_count)]

        await wait_for(pilot, lambda: users() == ["alice", "bob", "olga", "vera"], "this month's, then the rest")
        assert str(table.get_row_at(3)[4]) == "unlimited"  # vera is vip
        assert "2 users active this month, 4 known" in screen_text(app)
        await pilot.press("slash", *"olg")
        await wait_for(pilot, lambda: users() == ["olga"], "the table narrowed to olga")
        assert "4 known, 1 shown" in screen_text(app)
        await pilot.press("enter", "r")  # back to the table, olga highlighted: a fresh day for her
        await wait_for(pilot, lambda: "Give 'olga' a fresh quota" in screen_text(app), "the question")
