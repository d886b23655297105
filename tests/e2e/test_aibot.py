"""The WeCom AI bot end to end: the real daemon on a fake AI-bot server (ws:// on loopback) and a fake model."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.aibot_runner import BOT_FAST, bot_settings
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot


@pytest.fixture
async def bot() -> AsyncIterator[FakeAIBot]:
    async with FakeAIBot() as fake:
        yield fake


async def test_a_private_question_is_answered_in_place(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    answer = "".join(f"第{n}句话。" for n in range(40))
    model.set_reply(answer)
    model.set_stream(chunk_chars=10, chunk_delay=0.02)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await bot.wait_for(lambda: bot.subscribed, what="a subscribe")
        req_id, msgid = await bot.push_text("alice", "讲个故事")
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
    assert stream.text == answer
    assert stream.id == f"s_{msgid}" and stream.feedback_id == msgid
    assert stream.contents[0] == "思考中…"
    assert len(stream.contents) > 3  # it grew in place
    grown = stream.contents[1:]
    assert all(answer.startswith(c) for c in grown), grown  # cumulative: each frame the whole text so far
    assert bot.sent == [] and not bot.late_frames
