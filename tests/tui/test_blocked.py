"""A conversation whose answer cannot be delivered says why on the Status page, with the fix, and `t` (there, or on
a Live row that is retrying) delivers it at once once the cause is fixed — not after the backoff's five minutes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from chatgpt_wecom.daemon.pipeline.delivery import DeliveryPolicy
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FOREVER, SEND, FakeWeCom
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for

UNTRUSTED = "not allow to access from your ip, hint: [1700000000_1_abc], from ip: 203.0.113.7, more info at x"
LONG_WAIT = replace(FAST, delivery=DeliveryPolicy(first_pause=300.0, max_pause=300.0, give_up_after=3600.0))


async def test_status_shows_the_blocked_conversation_and_t_delivers_it_now(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    wecom.fail(SEND, errcode=60020, times=FOREVER, errmsg=UNTRUSTED)
    async with DaemonRunner(settings, LONG_WAIT) as daemon:
        app = tui(settings.socket_path, screen="status")
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await daemon.ask("u1", "你好", next(MSG_IDS))
            await wait_for(pilot, lambda: "fix: add this server's IP (203.0.113.7)" in screen_text(app), "the fix",
                           timeout=15)  # fmt: skip
            text = screen_text(app)
            assert "blocked" in text and "u1 (wecom)" in text and "errcode 60020" in text
            wecom.clear_failures()  # the operator put the IP on the trusted list
            await pilot.press("t")
            await wecom.wait_for_sent(1, user="u1", timeout=20)  # the backoff alone would wait five minutes
            await wait_for(pilot, lambda: "u1 (wecom)" not in screen_text(app), "the section to empty", timeout=15)
    assert wecom.texts_to("u1") == ["echo: 你好"]


async def test_t_on_a_retrying_live_row_delivers_that_users_answer_now(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    wecom.fail(SEND, errcode=60020, times=FOREVER, errmsg=UNTRUSTED)
    async with DaemonRunner(settings, LONG_WAIT) as daemon:
        app = tui(settings.socket_path)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            await daemon.ask("u2", "在吗", next(MSG_IDS))
            await wait_for(pilot, lambda: "t: try delivering now" in screen_text(app), "the offer to retry", timeout=15)
            wecom.clear_failures()
            await pilot.press("t")
            await wecom.wait_for_sent(1, user="u2", timeout=20)
    assert wecom.texts_to("u2") == ["echo: 在吗"]
