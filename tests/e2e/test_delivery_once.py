"""Nothing twice, nothing silent: lost WeCom replies, repeated answers, restarts mid-send, "slow down", defects."""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.pipeline.delivery import DeliveryPolicy
from tests.daemon_runner import FAST, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FOREVER, SEND, FakeWeCom


@pytest.mark.parametrize("how", ["502", "slow"])
async def test_a_lost_reply_does_not_show_the_answer_twice(daemon: DaemonRunner, wecom: FakeWeCom, how: str) -> None:
    """WeCom (or the proxy in front of it) delivered the message, but its reply was lost: the resend is the same
    request, so WeCom's duplicate check drops it."""
    wecom.lose_replies(SEND, how=how)
    await daemon.say("u1", "你好")
    await wecom.wait_for(lambda: wecom.duplicates_dropped == 1, what="the resend dropped as a duplicate")
    assert wecom.texts_to("u1") == ["echo: 你好"]
    first, second = (r.body for r in wecom.requests_to(SEND))
    assert first == second


async def test_the_same_answer_twice_is_delivered_twice(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    """帮助 asked twice within the duplicate-check interval: two answers, neither dropped as the other's copy."""
    await daemon.say("u1", "帮助")
    await daemon.say("u1", "帮助")
    await daemon.say("u1", "帮助")
    help_text = wecom.texts_to("u1")[0]
    assert wecom.texts_to("u1") == [help_text] * 3
    intervals = [r.json["duplicate_check_interval"] for r in wecom.requests_to(SEND)]
    assert len(set(intervals)) == 3 and all(r.json["enable_duplicate_check"] == 1 for r in wecom.requests_to(SEND))


async def test_a_send_cut_by_a_restart_is_resent_as_the_same_request(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    wecom.lose_replies(SEND, how="slow")  # WeCom has it; the daemon stops before the reply comes
    tuning = replace(FAST, shutdown_grace=0.2)
    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.ask("u1", "重启前", 1)
        await wecom.wait_for_sent(1, user="u1")
    async with DaemonRunner(settings, tuning) as daemon:
        await wecom.wait_for(lambda: len(wecom.requests_to(SEND)) == 2, what="the resend after the restart")
        await daemon.idle()
    first, second = (r.body for r in wecom.requests_to(SEND))
    assert first == second
    assert wecom.texts_to("u1") == ["echo: 重启前"]
    with sqlite3.connect(settings.database_path) as conn:
        assert [r[0] for r in conn.execute("SELECT state FROM outbox")] == ["sent"]


@pytest.mark.parametrize("errcode", [45009, 45033])
async def test_slow_down_pauses_every_delivery_instead_of_hammering(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, errcode: int
) -> None:
    pause = 0.4
    tuning = replace(FAST, delivery=DeliveryPolicy(first_pause=0.05, max_pause=2.0, rate_limited_pause=pause))
    wecom.fail(SEND, errcode=errcode, times=3)
    async with DaemonRunner(make_settings(tmp_path, wecom, model), tuning) as daemon:
        await daemon.ask("u1", "一", 1)
        await daemon.ask("u2", "二", 2)
        await wecom.wait_for_sent(2, timeout=20)
    times = [r.at for r in wecom.requests_to(SEND)]
    assert len(times) == 5  # three refusals, then one send each: no retry burst
    # After a refusal every delivery waits, the other user's too: within any pause, at most one try per user.
    assert max(sum(1 for t in times if start <= t < start + pause * 0.9) for start in times) <= 2, times


async def test_a_repeated_configuration_error_is_logged_once_with_a_count(
    daemon: DaemonRunner, wecom: FakeWeCom, caplog: pytest.LogCaptureFixture
) -> None:
    wecom.fail(SEND, errcode=60020, times=FOREVER)  # the server's IP is not on the app's trusted list

    def lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR and "60020" in r.getMessage()]

    for n in range(3):
        await daemon.ask(f"u{n}", "你好", 10 + n)
    await wecom.wait_for(lambda: len(wecom.requests_to(SEND)) >= 12, what="a dozen refused sends")
    assert len(lines()) == 1, lines()
    assert "trusted IPs" in lines()[0]


async def test_an_unforeseen_failure_ends_in_an_apology(
    daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom
) -> None:
    """The disk refuses the image #图片 made (here: a directory stands where the file goes): the user hears back,
    the operator sees the error, the message is finished — not left pending until the next restart."""
    model.set_image()
    blocker = daemon.settings.data_dir / "images" / "1.png"
    (blocker / "in-the-way").mkdir(parents=True)
    await daemon.ask("u1", "#图片 一只猫", 1)
    (text,) = await wecom.wait_for_sent(1, user="u1")
    assert "出错" in text["markdown"]["content"]
    await daemon.idle()
    with sqlite3.connect(daemon.settings.database_path) as conn:
        assert conn.execute("SELECT state FROM inbox").fetchall() == [("done",)]
        (error,) = conn.execute("SELECT error FROM exchanges").fetchone()
    assert "internal error" in error
    assert daemon.services is not None
    assert any(e.data.get("source") == "pipeline" for e in daemon.services.bus.recent_errors)


async def test_a_stream_cut_by_a_restart_is_finished_honestly_not_asked_again(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    paragraphs = ["第一段：已经发出去了。", "第二段：模型还在写。", "第三段：永远写不完。"]
    model.set_reply("\n\n".join(paragraphs))
    model.set_stream(chunk_chars=4, chunk_delay=0.5)  # the first paragraph is out long before the rest
    settings = make_settings(tmp_path, wecom, model)
    tuning = replace(FAST, shutdown_grace=0.2)
    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.ask("u1", "写三段", 1)
        await wecom.wait_for_sent(1, user="u1")  # the first part is stored and delivered; then the daemon stops
    async with DaemonRunner(settings, tuning) as daemon:
        await wecom.wait_for_sent(2, user="u1")
        await daemon.idle()
    first, note = wecom.texts_to("u1")
    assert first == paragraphs[0] and "中断" in note
    assert len(model.requests) == 1  # not asked again: a second answer would differ from what was sent
    with sqlite3.connect(settings.database_path) as conn:
        assert conn.execute("SELECT answer, error FROM exchanges").fetchall() == [
            (paragraphs[0], "interrupted by a restart")
        ]
        assert conn.execute("SELECT state FROM inbox").fetchall() == [("done",)]
