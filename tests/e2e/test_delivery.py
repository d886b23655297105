"""From ack to delivered answer: slow models, WeCom's retries, long answers, WeCom and model failures."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from dataclasses import replace
from pathlib import Path
from typing import Literal

import pytest

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat import replies
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom


async def test_ack_comes_before_a_slow_answer(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    model.set_delay(6.0)  # longer than WeCom's 5-second patience
    await daemon.ask("u1", "慢慢想", 1)
    # Acked while the model is still thinking: the model has the question, WeCom has no answer yet.
    await model.wait_for_requests(1)
    assert wecom.sent == []
    await wecom.wait_for_sent(1, user="u1", timeout=15)
    assert wecom.texts_to("u1") == ["echo: 慢慢想"]


async def test_wecom_retries_of_one_msgid_give_one_answer(
    daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom
) -> None:
    model.set_delay(0.5)
    req = daemon.signer.text("u1", "只回答一次", 4561255354251345929)
    results = await asyncio.gather(*(daemon.post(req) for _ in range(4)))
    assert results == [(200, "")] * 4
    await wecom.wait_for_sent(1, user="u1")
    assert await daemon.post(req) == (200, "")  # a late retry, after the answer
    await daemon.ask("u1", "下一个", 2)
    await wecom.wait_for_sent(2, user="u1")
    assert [r.last_user_text for r in model.requests] == ["只回答一次", "下一个"]
    assert wecom.texts_to("u1") == ["echo: 只回答一次", "echo: 下一个"]


async def test_retry_after_restart_is_still_a_duplicate(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings) as daemon:
        req = daemon.signer.text("u1", "一次", 99)
        assert await daemon.post(req) == (200, "")
        await wecom.wait_for_sent(1, user="u1")
    async with DaemonRunner(settings) as daemon:
        assert await daemon.post(req) == (200, "")
        await daemon.ask("u1", "二次", 100)
        await wecom.wait_for_sent(2, user="u1")
    assert len(model.requests) == 2


async def test_long_chinese_answer_is_split_in_order(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    paragraphs = [f"第{n}段。" + "这是一个很长的中文回答，用来测试分段发送。" * 12 for n in range(1, 26)]
    answer = "\n\n".join(paragraphs)
    assert len(answer.encode()) > 15_000
    model.set_reply(answer)
    await daemon.ask("u1", "写长一点", 1)
    await wecom.wait_for(lambda: any("第25段" in t for t in wecom.texts_to("u1")), timeout=15)
    texts = wecom.texts_to("u1")
    assert all(len(t.encode()) <= 2048 for t in texts)
    assert len(texts) <= -(-len(answer.encode()) // 1024)  # few, large parts
    assert "".join(texts).replace("\n", "") == answer.replace("\n", "")
    assert all(t.startswith("第") for t in texts)  # cut at paragraph boundaries


async def test_expired_token_is_refreshed_once(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    await daemon.ask("u1", "一", 1)
    await wecom.wait_for_sent(1, user="u1")
    wecom.expire_tokens()
    await daemon.ask("u1", "二", 2)
    await wecom.wait_for_sent(2, user="u1")
    assert wecom.token_fetches == 2


async def test_wecom_5xx_is_retried(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    wecom.fail("/cgi-bin/message/send", status=502, times=4)  # more than one client call's worth of tries
    await daemon.ask("u1", "你好", 1)
    await wecom.wait_for_sent(1, user="u1")
    assert wecom.texts_to("u1") == ["echo: 你好"]


async def test_model_down_gives_an_apology(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    model.down()
    await daemon.ask("u1", "有人吗", 1)
    await wecom.wait_for_sent(1, user="u1")
    (text,) = wecom.texts_to("u1")
    assert "抱歉" in text
    assert "503" not in text and "127.0.0.1" not in text  # no internals


@pytest.mark.parametrize("before", ["headers", "body"])
async def test_a_model_that_never_starts_answering_gets_the_user_an_apology_in_time(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, before: Literal["headers", "body"]
) -> None:
    """Each attempt waits first_token_timeout for the answer to start, not model_timeout: a silent model is given
    up after (retries + 1) × first_token_timeout plus the SDK's backoff — here 2 × 0.5 s + ~0.5 s, where waiting
    model_timeout per attempt took 2 × 30 s."""
    first, retries = 0.5, 1
    settings = make_settings(
        tmp_path, wecom, model, model_timeout=30.0, first_token_timeout=first, model_max_retries=retries
    )
    model.stall(before)
    async with DaemonRunner(settings) as daemon:
        started = time.monotonic()
        await daemon.ask("u1", "有人吗", next(MSG_IDS))
        await wecom.wait_for_sent(1, user="u1", timeout=20)
        waited = time.monotonic() - started
    assert wecom.texts_to("u1") == [replies.model_unavailable()]
    assert len(model.requests) == retries + 1  # the retry was made, and given up on in time as well
    assert (retries + 1) * first <= waited < settings.model_timeout / 3


async def test_wrong_secret_is_one_clear_error_and_no_tight_loop(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, wecom, model, agent_secret="not-the-secret")
    tuning = replace(FAST, http_retry=replace(FAST.http_retry, config_error_cooldown=300.0))

    def config_errors() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.levelname == "ERROR" and "secret" in r.getMessage()]

    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.ask("u1", "你好", 1)
        await wecom.wait_for(lambda: bool(config_errors()))
        await daemon.ask("u2", "还在吗", 2)
        await model.wait_for_requests(2)
    assert wecom.sent == []
    assert wecom.token_fetches == 1  # cool-down: WeCom bans an IP that repeats a wrong secret
    assert len(config_errors()) == 1
    assert all("not-the-secret" not in r.getMessage() for r in caplog.records)


async def test_undelivered_answer_waits_in_the_outbox(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    """WeCom unreachable for a while: the answer is kept and goes out when it is back."""
    settings = make_settings(tmp_path, wecom, model)
    wecom.fail("/cgi-bin/message/send", status=503, times=8)
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "你好", 1)
        await wecom.wait_for_sent(1, user="u1", timeout=15)
    assert _outbox_states(settings) == ["sent"]


def _outbox_states(settings: Settings) -> list[str]:
    with sqlite3.connect(settings.database_path) as conn:
        return [r[0] for r in conn.execute("SELECT state FROM outbox ORDER BY id")]
