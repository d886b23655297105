"""AI card streaming (stream_mode + card_template_id): the answer grows in one card and part 0 finishes it; a
card DingTalk refuses falls back to messages; without the keys nothing changes."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from tests.daemon_runner import DaemonRunner
from tests.dingtalk_runner import FAST_DING, dingtalk_settings
from tests.fakes.dingtalk import CARD_CREATE, CARD_STREAM, FakeDingTalk
from tests.fakes.model import FakeModel

APP = "ding-app-1"
ANSWER = "\n\n".join(f"第{n}段：卡片里逐字出现的回答。" for n in range(1, 6))
CARD = {"stream_mode": True, "card_template_id": "tpl-ai-card.schema"}


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk({APP: "ding-secret-1"}) as fake:
        yield fake


async def ask(daemon: DaemonRunner, ding: FakeDingTalk, text: str, user: str, group: str | None = None) -> None:
    await ding.push(ding.message(text, user=user, group=group))
    await daemon.idle(20)


async def test_the_answer_grows_in_one_card_and_part_0_finishes_it(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    model.set_reply(ANSWER)
    model.set_stream(chunk_chars=4, chunk_delay=0.03)
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model, **CARD), FAST_DING) as daemon:
        await ding.wait_connected(APP)
        await ask(daemon, ding, "讲一讲", user="alice")
        await ask(daemon, ding, "群里讲一讲", user="bob", group="cidCard==")
        await ask(daemon, ding, "帮助", user="alice")  # not streamed by the model: a plain message
    private, group = ding.cards.values()
    assert private.space == "dtv1.card//IM_ROBOT.alice" and group.space == "dtv1.card//IM_GROUP.cidCard=="
    assert group.robot == APP
    for card in (private, group):
        assert card.finished and card.text == ANSWER
        assert len(card.frames) >= 3, "updated as it grew, not once at the end"
        assert all(ANSWER.startswith(text) for text, _ in card.frames)
        assert [final for _, final in card.frames].count(True) == 1
    assert ding.texts(chat="cidCard==") == []  # the answer is in the card, not repeated as a message
    (help_text,) = ding.texts(user="alice")  # 帮助's reply; the streamed answer went only into the card
    assert "帮助" in help_text


async def test_a_refused_card_falls_back_to_messages(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> None:
    model.set_reply(ANSWER)
    model.set_stream(chunk_chars=4, chunk_delay=0.01)
    ding.fail(CARD_CREATE, 403, {"code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "message": "无权限",
                                 "accessdenieddetail": {"requiredScopes": ["Card.Instance.Write"]}})  # fmt: skip
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model, **CARD), FAST_DING) as daemon:
        await ding.wait_connected(APP)
        await ask(daemon, ding, "讲一讲", user="carl")
    assert ding.cards == {}
    assert "".join(ding.texts(user="carl")).replace("\n", "") == ANSWER.replace("\n", "")


async def test_a_card_that_stops_updating_still_ends_in_the_whole_answer(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    model.set_reply(ANSWER)
    model.set_stream(chunk_chars=4, chunk_delay=0.03)
    ding.fail(CARD_STREAM, 500, {"code": "ServiceUnavailable", "message": "busy"}, times=100)
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model, **CARD), FAST_DING) as daemon:
        await ding.wait_connected(APP)
        await ask(daemon, ding, "讲一讲", user="dora")
    assert ding.texts(user="dora") == [ANSWER]


async def test_without_a_template_stream_mode_only_warns(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    model.set_reply(ANSWER)
    model.set_stream(chunk_chars=4, chunk_delay=0.01)
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model, stream_mode=True), FAST_DING) as daemon:
        await ding.wait_connected(APP)
        await ask(daemon, ding, "讲一讲", user="emil")
    assert ding.cards == {} and ding.requests_to(CARD_CREATE) == []
    assert "stream_mode needs card_template_id" in caplog.text
    assert "".join(ding.texts(user="emil")).replace("\n", "") == ANSWER.replace("\n", "")


async def test_a_stop_mid_answer_ends_the_card_as_failed_and_the_restart_finishes_with_messages(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    model.set_reply(ANSWER)
    model.set_stream(chunk_chars=2, chunk_delay=0.2)  # slow: the stop comes mid-answer
    settings = dingtalk_settings(tmp_path, ding, model, **CARD)
    tuning = replace(FAST_DING, shutdown_grace=0.1)
    async with DaemonRunner(settings, tuning):
        await ding.wait_connected(APP)
        await ding.push(ding.message("讲一讲", user="finn"))
        await ding.wait_for(lambda: any(c.frames for c in ding.cards.values()), what="the card's first words")
        await ding.wait_for(lambda: drafts(settings.database_path) > 0, what="the shown text checkpointed")
    (card,) = ding.cards.values()
    assert card.finished and card.error and ANSWER.startswith(card.text)
    async with DaemonRunner(settings, tuning) as daemon:
        await ding.wait_connected(APP, count=2)
        await daemon.idle(20)
    (note,) = ding.texts(user="finn")  # what the card showed, and a note — not a second, different answer
    assert "中断" in note and len(ding.cards) == 1
    assert len(model.requests) == 1  # not asked again


def drafts(database: Path) -> int:
    with sqlite3.connect(database) as conn:
        return int(conn.execute("SELECT count(*) FROM drafts").fetchone()[0])
