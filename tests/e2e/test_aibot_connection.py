"""The AI bot's connection end to end: reconnects after every close with growing delays, a dead heartbeat is
replaced, a kick is obeyed (no fight), a refused subscribe is reported without the secret, kill -9 mid-answer."""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from chatgpt_wecom.daemon.channels.wecom_bot.channel import WeComBot
from tests.aibot_runner import BOT_FAST, bot_process, bot_settings
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot


@pytest.fixture
async def bot() -> AsyncIterator[FakeAIBot]:
    async with FakeAIBot() as fake:
        yield fake


async def test_after_every_abrupt_close_it_reconnects_with_growing_delays(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    bot.close_after_subscribe = True
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await bot.wait_for(lambda: len(bot.subscribed_at) >= 6, what="six subscribes")
        bot.close_after_subscribe = False
        await bot.wait_for(lambda: bot.subscribed, what="a connection that stays")
        req_id, _ = await bot.push_text("alice", "还在吗")  # it works again
        await bot.wait_finished(req_id)
        assert daemon.services is not None
        status = await daemon.services.operator.status()
    gaps = [b - a for a, b in zip(bot.subscribed_at, bot.subscribed_at[1:], strict=False)][:5]
    assert gaps[3] > 2 * gaps[0], gaps  # 0.05, 0.1, 0.2, 0.4 … (±20 %): backing off, never a hot loop
    (channel,) = status.channels
    assert channel.reconnects >= 6 and channel.up


async def test_a_connection_whose_pings_go_unanswered_is_replaced(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST):
        await bot.wait_for(lambda: bot.subscribed, what="a subscribe")
        bot.ack_pings = False
        await bot.wait_for(lambda: bot.connections >= 2, what="a new connection")
        bot.ack_pings = True
        await bot.wait_for(lambda: bot.subscribed, what="the new connection subscribed")
        req_id, _ = await bot.push_text("alice", "你好")
        await bot.wait_finished(req_id)
    first = [f for f in bot.frames if f.conn == 1 and f.cmd == "ping"]
    assert len(first) == 2  # two unanswered, then the third beat closes it instead of pinging again
    assert all("body" not in f.data for f in first)


async def test_a_kick_is_obeyed_without_a_fight(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot, caplog: pytest.LogCaptureFixture
) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await bot.wait_for(lambda: bot.subscribed, what="a subscribe")
        async with aiohttp.ClientSession() as http, http.ws_connect(bot.ws_url) as other:  # another instance
            await other.send_str(json.dumps({"cmd": "aibot_subscribe", "headers": {"req_id": "aibot_subscribe_1"},
                                             "body": {"bot_id": bot.bot_id, "secret": bot.secret}}))  # fmt: skip
            assert (await other.receive_json())["errcode"] == 0
            assert daemon.services is not None
            channel = daemon.services.channels["wecom_bot"]
            assert isinstance(channel, WeComBot)
            await wait_until(lambda: channel.detail()["kicked"], what="the kick noticed")
            await wait_until(lambda: not channel.state.up, what="the channel down")
            await wait_until(lambda: not channel.conn.running, what="the connection task to end")  # for good
            status = await daemon.services.operator.status()
            assert bot.connections == 2  # it did not dial again
    (shown,) = status.channels
    assert shown.up is False and shown.detail["kicked"] is True and "another instance" in (shown.last_error or "")
    lines = [r.getMessage() for r in caplog.records if "another instance" in r.getMessage()]
    assert len(lines) == 1 and "not reconnecting" in lines[0]


async def test_a_refused_subscribe_is_reported_without_the_secret(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = bot_settings(tmp_path, wecom, model, bot, wecom_bot_secret="WRONG-SECRET-123")
    async with DaemonRunner(settings, BOT_FAST) as daemon:
        assert daemon.services is not None
        services = daemon.services
        await wait_until(lambda: len(bot.sent_frames("aibot_subscribe")) >= 3, what="three tries")
        status = await services.operator.status()
    (channel,) = status.channels
    assert not channel.up and "40001" in (channel.last_error or "")
    assert "WRONG-SECRET-123" not in status.model_dump_json()
    assert not any("WRONG-SECRET-123" in r.getMessage() for r in caplog.records)
    assert any(e.data.get("hint", "").startswith("check wecom_bot_id") for e in status.last_errors)


async def test_kill_9_mid_answer_ends_in_one_complete_message(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    """The daemon dies while the answer grows in place: after the restart the user gets what they saw plus a note,
    once — the same stream finished if the server still takes it — and the model is not asked again."""
    answer = "".join(f"第{n}句。" for n in range(400))
    model.set_reply(answer)
    model.set_stream(chunk_chars=8, chunk_delay=0.05)  # 20 s for the whole answer: it is killed long before
    settings = bot_settings(tmp_path, wecom, model, bot)
    (tmp_path / "run").mkdir()

    def draft() -> str:
        with sqlite3.connect(settings.database_path) as conn:
            found = conn.execute("SELECT text FROM drafts").fetchone()
        return str(found[0]) if found else ""

    async with bot_process(settings, tmp_path / "run") as daemon:
        await bot.wait_for(lambda: bot.subscribed, 20, what="a subscribe")
        req_id, msgid = await bot.push_text("alice", "写很长的东西")
        await bot.wait_for(lambda: len(draft()) > 20, 20, what="a checkpoint of the draft")
        await daemon.kill()
    saved = draft()

    def states() -> list[str]:
        with sqlite3.connect(settings.database_path) as conn:
            return [r[0] for r in conn.execute("SELECT state FROM inbox")]

    async with bot_process(settings, tmp_path / "run"):
        stream = await bot.wait_finished(req_id, 20)
        await wait_until(lambda: states() == ["done"], what="the message done")
    assert len(model.requests) == 1
    assert stream.id == f"s_{msgid}"
    assert stream.text.startswith(saved) and "中断" in stream.text
    assert bot.sent == [] and not bot.late_frames  # one message: the same bubble, finished
