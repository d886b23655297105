"""Answers that grow in place, through the seam: a channel defined here (it streams in place) gets its live message
opened at once and shown the censored answer as it grows, then receives part 0 — with the message it answers — as
the final state; the growing text is checkpointed, and a stop mid-answer ends in what the user saw plus a note,
never in a second, different answer."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

from chatgpt_wecom.daemon.channels.base import LiveReply, Origin
from chatgpt_wecom.daemon.chat import replies
from tests.daemon_runner import FAST, DaemonRunner, make_settings
from tests.fakes import channel as fakes
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom


class RecordingLive(LiveReply):
    def __init__(self, origin: Origin) -> None:
        self.origin = origin
        self.shown: list[str] = []
        self.closed = 0

    def show(self, text: str) -> None:
        self.shown.append(text)

    async def close(self) -> None:
        self.closed += 1


class GrowingChannel(fakes.MemoryChannel):
    """The in-memory transport, showing answers in place, 200 bytes per message."""

    name = "growing"
    capabilities = dataclasses.replace(
        fakes.MemoryChannel.capabilities, text_limit=200, streams_in_place=True, formats=frozenset({"markdown"})
    )

    def __init__(self) -> None:
        super().__init__()
        self.lives: list[RecordingLive] = []

    def live_reply(self, origin: Origin) -> LiveReply | None:
        live = RecordingLive(origin)
        self.lives.append(live)
        return live


async def test_the_answer_grows_in_one_live_message_and_part_0_ends_it(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    answer = "第一段：流式回答。\n\n第二段：继续写。\n\n第三段：写完了。"
    model.set_reply(answer)
    model.set_stream(chunk_chars=3, chunk_delay=0.01)
    growing = GrowingChannel()
    async with DaemonRunner(make_settings(tmp_path, wecom, model), extra_channels=[growing]):
        inbox_id = await growing.receive("alice", "讲一讲", chat="room-1")
        await wait_until(lambda: len(growing.sent) == 1, what="the answer")

    [live] = growing.lives
    assert live.origin.user_id == "alice" and live.origin.chat == "room-1" and live.origin.message_id.startswith("m")
    assert live.closed >= 1
    assert len(live.shown) >= 3, "shown as it grew, not once at the end"
    assert all(answer.startswith(text) for text in live.shown), live.shown  # each a prefix of the answer
    [final] = growing.sent
    assert final.part == 0 and final.content == answer and final.kind == "markdown"
    assert final.origin is not None and final.origin.message_id == live.origin.message_id
    assert inbox_id > 0


async def test_a_long_answer_ends_the_live_message_at_the_limit_and_goes_on_in_messages(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    answer = "\n\n".join(f"第{n}段：这是一个不算短的段落，用来填满消息。" for n in range(1, 13))  # ~700 bytes
    model.set_reply(answer)
    model.set_stream(chunk_chars=7)
    growing = GrowingChannel()
    async with DaemonRunner(make_settings(tmp_path, wecom, model), extra_channels=[growing]):
        await growing.receive("bob", "写长一点")
        await wait_until(lambda: "第12段" in "".join(m.content for m in growing.sent), what="the whole answer")

    parts = growing.sent
    assert [m.part for m in parts] == list(range(len(parts))) and len(parts) >= 4
    assert all(len(m.content.encode()) <= 200 for m in parts)
    assert "\n\n".join(m.content for m in parts) == answer  # nothing lost, nothing twice
    [live] = growing.lives
    assert all(len(text.encode()) <= 200 for text in live.shown)
    assert all(parts[0].content.startswith(text) or text.startswith(parts[0].content[:10]) for text in live.shown)


async def test_sensitive_words_never_reach_the_live_message(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    model.set_reply("这里有一个机密词，请注意。")
    model.set_stream(chunk_chars=1)
    growing = GrowingChannel()
    settings = make_settings(tmp_path, wecom, model, sensitive_words=["机密词"])
    async with DaemonRunner(settings, extra_channels=[growing]):
        await growing.receive("carol", "说点什么")
        await wait_until(lambda: len(growing.sent) == 1, what="the answer")

    [live] = growing.lives
    assert live.shown and not any("机" in text for text in live.shown), live.shown
    assert "机密词" not in growing.sent[0].content and "🚫" in growing.sent[0].content


async def test_a_stop_mid_answer_ends_in_what_was_shown_plus_a_note(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    answer = "".join(f"句子{n}。" for n in range(200))
    model.set_reply(answer)
    model.set_stream(chunk_chars=4, chunk_delay=0.05)  # ~10 s in all: the stop comes long before the end
    settings = make_settings(tmp_path, wecom, model)
    tuning = dataclasses.replace(FAST, shutdown_grace=0.2, checkpoint_every=0.05)
    first = GrowingChannel()
    async with DaemonRunner(settings, tuning, extra_channels=[first]):
        await first.receive("dave", "一直说")
        db = sqlite3.connect(settings.database_path)
        await wait_until(lambda: db.execute("SELECT length(text) FROM drafts").fetchone() is not None, what="a draft")
        await wait_until(lambda: db.execute("SELECT length(text) FROM drafts").fetchone()[0] > 20, what="it grows")
    assert first.sent == []  # stopped before any part was stored
    draft = db.execute("SELECT text FROM drafts").fetchone()[0]
    asked = len(model.requests)

    second = GrowingChannel()
    async with DaemonRunner(settings, tuning, extra_channels=[second]):
        note = replies.answer_interrupted()
        await wait_until(lambda: any(note in m.content for m in second.sent), what="the rest after the restart")
    assert len(model.requests) == asked, "not asked again: a second answer would differ from what was shown"
    shown = "\n\n".join(m.content for m in second.sent)  # the draft fills most of a 200-byte message: two with the note
    assert shown.startswith(draft) and shown.endswith(replies.answer_interrupted()) and len(second.sent) <= 2
    assert second.sent[-1].content.endswith(replies.answer_interrupted())  # the note whole, never cut in two
    assert answer.startswith(draft)
    assert db.execute("SELECT count(*) FROM drafts").fetchone()[0] == 0
    state = db.execute("SELECT state FROM inbox").fetchone()[0]
    assert state == "done"
    # Closed without an answer, the message is still dave's latest in the user directory.
    assert db.execute("SELECT user_id, last_inbox_id FROM conversations").fetchall() == [("dave", 1)]


async def test_an_answer_waiting_for_a_rate_limited_provider_says_so_in_place(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    model.retry_after_ms = 200.0
    model.fail(429, times=1)
    growing = GrowingChannel()
    async with DaemonRunner(make_settings(tmp_path, wecom, model), extra_channels=[growing]):
        await growing.receive("erin", "在吗")
        await wait_until(lambda: len(growing.sent) == 1, what="the answer after the wait")
    [live] = growing.lives
    assert live.shown[0] == replies.provider_busy(0.2)
    assert growing.sent[0].content == "echo: 在吗"
