"""Nothing silently dropped: deliveries keep to WeCom's per-member rate, restarts included; queued parts of one
answer merge; one answer sends a bounded number of messages.

WeCom answers ok and drops what exceeds 30 messages a minute to one member; the fake does the same with a rate
scaled down to seconds, and the daemon is given the same rate, so each test runs in a few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from dataclasses import replace
from pathlib import Path

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.pipeline.pacing import Rate
from chatgpt_wecom.daemon.services import Tuning
from tests.daemon_runner import FAST, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom


def paced(wecom: FakeWeCom, count: int, seconds: float) -> Tuning:
    """The fake drops beyond `count` per `seconds` to one member, and the daemon is told that rate."""
    wecom.member_rates = ((count, seconds),)
    return replace(FAST, member_rates=(Rate(count, seconds),))


async def test_quick_questions_are_all_delivered_at_the_members_pace(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    tuning = paced(wecom, 3, 1.0)
    async with DaemonRunner(make_settings(tmp_path, wecom, model), tuning) as daemon:
        events = daemon.services.bus.subscribe() if daemon.services else None
        for n in range(8):
            await daemon.ask("u1", f"问题{n}", 100 + n)
        await wecom.wait_for_sent(8, user="u1", timeout=20)
        await daemon.idle()
    assert wecom.dropped == []
    assert wecom.texts_to("u1") == [f"echo: 问题{n}" for n in range(8)]
    assert events is not None
    kinds = []
    with contextlib.suppress(TimeoutError):  # every event is already queued: take them until none is left
        while True:
            kinds.append((await asyncio.wait_for(events.get(), 0.1)).kind)
    assert "delivery.waiting" in kinds and "delivery.failed" not in kinds  # waiting, not failing


async def test_a_restart_does_not_reset_the_pace_into_a_burst(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    tuning = paced(wecom, 2, 3.0)
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.say("u1", "一")
        await daemon.say("u1", "二")
    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.say("u1", "三")
    assert wecom.dropped == []
    assert wecom.texts_to("u1") == ["echo: 一", "echo: 二", "echo: 三"]
    first, _, third = (r.at for r in wecom.requests_to("/cgi-bin/message/send"))
    assert third - first >= 3.0


async def test_parts_queued_behind_the_pace_go_out_merged(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    tuning = paced(wecom, 1, 3.0)
    paragraphs = [f"第{n}段：一句不长的话。" for n in range(1, 7)]
    model.set_reply("\n\n".join(paragraphs))
    model.set_stream(chunk_chars=12, chunk_delay=0.25)  # a paragraph about every half second, for 3 s
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.say("u1", "帮助")  # uses the member's one message for the next 3 s
        await daemon.say("u1", "讲一讲")
    assert wecom.dropped == []
    answer = wecom.texts_to("u1")[1:]
    assert "\n\n".join(answer) == "\n\n".join(paragraphs)
    ((stored,),) = _outbox(settings, "SELECT COUNT(*) FROM outbox WHERE inbox_id = 2")
    assert isinstance(stored, int)
    assert len(answer) < stored  # the parts that queued while it waited went out as one message


async def test_an_answer_sends_at_most_max_answer_parts(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    """A huge answer is cut at max_answer_parts messages; the last one links to the whole answer."""
    paragraphs = [f"第{n}段。" + "很长的回答。" * 100 for n in range(1, 41)]  # ~1.8 KB each, 40 of them
    model.set_reply("\n\n".join(paragraphs))
    settings = make_settings(tmp_path, wecom, model, max_answer_parts=4, service_url="https://bot.example.com")
    async with DaemonRunner(settings) as daemon:
        await daemon.say("u1", "写很长很长")
    texts = wecom.texts_to("u1")
    assert len(texts) <= 4  # three parts of the answer and the note (which may share the last message)
    shown = "\n\n".join(texts)
    assert "第3段" in shown and "第4段" not in shown
    assert "回答太长" in texts[-1] and "https://bot.example.com/" in texts[-1]
    (answer,) = _outbox(settings, "SELECT answer FROM exchanges")[0]
    assert answer == "\n\n".join(paragraphs)  # the whole answer is kept: the link shows it


def _outbox(settings: Settings, sql: str) -> list[tuple[object, ...]]:
    with sqlite3.connect(settings.database_path) as conn:
        return conn.execute(sql).fetchall()
