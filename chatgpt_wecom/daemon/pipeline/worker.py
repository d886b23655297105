"""Carries one inbox message to the end: respond, store the answer and its parts, deliver, done.

Each step is recorded, so the work resumes where it stopped after a crash:
- `pending`, no parts → the reply is (re)computed; nothing about it was stored yet.
- `pending` with parts → a streamed answer was cut off by a stop: its stored parts go out, followed by a note
  that it was interrupted (asking the model again would give a different answer after what was already sent).
- `answered` → the reply and all its parts are stored; only the parts not yet sent go out.
- `done`     → nothing left to do.

While an answer streams, each part the responder emits is stored at once and a courier task sends it, so the
user reads the first paragraph while the model is still writing the rest. On a channel that shows the answer
growing in one message (`streams_in_place`), the worker opens that message at once, shows it the text as it grows,
and checkpoints that text every few seconds (`drafts`): after a stop mid-answer, the user gets what they saw plus
a note, as for a streamed answer cut off — never a second, different answer.

One answer sends at most `max_parts` messages: past that, the last one says the answer was too long and links to
the whole of it (a signed history link, where `service_url` is set). A failure this module did not foresee ends in
an apology to the user and an `error` event for the operator — never in a message that silently waits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Mapping

from chatgpt_wecom.daemon.answer.router import Responder
from chatgpt_wecom.daemon.answer.turn import KEEP, InPlace, Outcome
from chatgpt_wecom.daemon.channels.base import Channel, LiveReply, Origin
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.words import REPLACEMENT
from chatgpt_wecom.daemon.events import ANSWER_PREVIEW, EventBus, preview
from chatgpt_wecom.daemon.live_settings import LiveSettings
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer
from chatgpt_wecom.daemon.pipeline.dispatcher import Postponed
from chatgpt_wecom.daemon.pipeline.split import split_message
from chatgpt_wecom.daemon.store.conversations import ConversationStore, Exchange
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.drafts import DraftStore
from chatgpt_wecom.daemon.store.inbox import InboxRow, InboxStore
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.usage import UsageStore

log = logging.getLogger(__name__)


class _Courier:
    """Sends a message's stored parts in the background while more are being added."""

    def __init__(self, deliverer: Deliverer, inbox_id: int) -> None:
        self._deliverer = deliverer
        self._inbox_id = inbox_id
        self._wake = asyncio.Event()
        self._closing = False
        self._task = asyncio.create_task(self._run(), name=f"courier:{inbox_id}")

    def poke(self) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            await self._deliverer.deliver(self._inbox_id)
            if self._closing and not self._wake.is_set():
                return
            await self._wake.wait()

    async def finish(self) -> None:
        """Send whatever is stored, then stop."""
        self._closing = True
        self._wake.set()
        await self._task

    def cancel(self) -> None:
        self._task.cancel()


class _Draft:
    """The growing text of an in-place answer: shown on the live message while no part is stored yet, and
    checkpointed every `every` seconds while it changes."""

    def __init__(self, drafts: DraftStore, inbox_id: int, live: LiveReply | None, every: float) -> None:
        self._drafts = drafts
        self._inbox_id = inbox_id
        self._live = live
        self._every = every
        self._text = ""
        self._saved = ""
        self.showing = True  # until the first part is stored: from then on that part is the live message's end
        self._closed = asyncio.Event()
        self._task = asyncio.create_task(self._checkpoints(), name=f"draft:{inbox_id}")

    def show(self, text: str) -> None:
        self._text = text
        if self.showing and self._live is not None:
            self._live.show(text)

    async def _checkpoints(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._closed.wait(), self._every)
                return
            except TimeoutError:
                pass
            if self._text != self._saved:
                text = self._text
                await self._drafts.save(self._inbox_id, text, time.time())
                self._saved = text

    async def close(self) -> None:
        """No more showing or checkpoints (a checkpoint being written is finished first)."""
        if self._closed.is_set():
            return
        self._closed.set()  # a checkpoint being written is finished, never cut off mid-way
        await asyncio.gather(self._task, return_exceptions=True)
        if self._live is not None:
            await self._live.close()


class _PartBudget:
    """Counts the parts of one answer; past `limit - 1` content parts it keeps no more and remembers the cut."""

    def __init__(self, limit: int) -> None:
        self._room = max(1, limit - 1)  # the last message is kept for the note that the answer was cut
        self.cut = False

    def take(self, parts: list[str]) -> list[str]:
        kept, self._room = parts[: self._room], max(0, self._room - len(parts))
        self.cut = self.cut or len(kept) < len(parts)
        return kept


class Worker:
    def __init__(
        self,
        db: Database,
        inbox: InboxStore,
        outbox: OutboxStore,
        responder: Responder,
        deliverer: Deliverer,
        bus: EventBus,
        *,
        live: LiveSettings,
        channels: Mapping[str, Channel],
        answer_link: Callable[[str], str | None],
        drafts: DraftStore,
        checkpoint_every: float = 2.0,
    ) -> None:
        self._db = db
        self._inbox = inbox
        self._outbox = outbox
        self._responder = responder
        self._deliverer = deliverer
        self._bus = bus
        self._channels = channels
        self._live = live  # reply_format, max_answer_parts, history_link_hours: as in force when read
        self._answer_link = answer_link  # a signed link to a user's history, or None without service_url
        self._drafts = drafts
        self._checkpoint_every = checkpoint_every  # seconds between checkpoints of an answer growing in place

    def _limit(self, row: InboxRow) -> int:
        return self._channels[row.channel].capabilities.text_limit

    def _format(self, row: InboxRow) -> str:
        """`reply_format` where the channel shows it, else the channel's first format (text before markdown)."""
        formats = self._channels[row.channel].capabilities.formats
        wanted = self._live.settings.reply_format
        return wanted if wanted in formats else sorted(formats, reverse=True)[0]

    async def process(self, inbox_id: int) -> None:
        row = await self._inbox.get(inbox_id)
        if row is None or row.state == "done":
            return
        if row.channel not in self._channels:  # its keys were removed since it arrived: it cannot be answered there
            log.warning("pipeline: message %d of %s came by channel %r, which is not configured now; it waits in the"
                        " inbox until that channel is configured again", row.id, row.user_id, row.channel)  # fmt: skip
            self._bus.publish("error", source="pipeline", user=row.user_id, inbox_id=row.id,
                              error=f"channel {row.channel!r} is not configured: the message waits")  # fmt: skip
            return
        if row.state == "pending":
            streamed = await self._outbox.stored(row.id)
            draft = await self._drafts.get(row.id)  # the message that was growing in place when the daemon stopped
            try:
                if streamed or draft:
                    await self._interrupted(row, streamed, draft)
                else:
                    await self._answer(row)
            except (Postponed, asyncio.CancelledError):
                raise
            except Exception as exc:
                await self._failed(row, exc)
        await self._deliverer.deliver(row.id)
        await self._inbox.mark_done(row.id)
        self._bus.publish("message.done", user=row.user_id, inbox_id=row.id)

    def _in_place(self, row: InboxRow) -> tuple[_Draft, InPlace] | None:
        """For a channel that shows answers growing in place: the draft of this one (its live message opened now,
        where the channel can), and how the responder shows it."""
        channel = self._channels[row.channel]
        if not channel.capabilities.streams_in_place:
            return None
        origin = Origin(
            message_id=row.dedupe_key.removeprefix(f"{row.channel}:"), user_id=row.user_id,
            chat=row.chat or row.user_id, received_at=row.received_at, payload=row.payload,
        )  # fmt: skip
        draft = _Draft(self._drafts, row.id, channel.live_reply(origin), self._checkpoint_every)
        return draft, InPlace(draft.show, channel.capabilities.message_max_age)

    async def _answer(self, row: InboxRow) -> None:
        emitted = 0
        courier: _Courier | None = None
        max_parts = self._live.settings.max_answer_parts  # as in force when this answer began
        budget = _PartBudget(max_parts)
        in_place = self._in_place(row)
        draft = in_place[0] if in_place else None

        sent: list[str] = []  # what the user gets, part by part (censored)

        async def emit(part: str) -> None:
            nonlocal emitted, courier
            whole = split_message(part, self._limit(row))  # a voice message's note may lead it
            pieces = budget.take(whole)
            if not pieces:
                return
            sent.append(part if len(pieces) == len(whole) else "\n\n".join(pieces))
            if draft is not None:
                draft.showing = False  # the live message ends with this part; the text after it grows unseen
            async with self._db.tx() as conn:
                await OutboxStore.add_parts(conn, row, self._format(row), pieces, start=emitted)
            emitted += len(pieces)
            courier = courier or _Courier(self._deliverer, row.id)
            courier.poke()

        try:
            outcome = await self._responder.respond(row, emit, self._limit(row), in_place[1] if in_place else None)
            if draft is not None:
                await draft.close()
            parts = budget.take(split_message(outcome.text, self._limit(row)))
            if budget.cut:
                hours = self._live.settings.history_link_hours  # the signed link's lifetime, read as it is made
                parts.append(replies.answer_truncated(self._answer_link(row.user_id), hours))
                log.info("pipeline: the answer to message %d of %s was cut at %d parts", row.id, row.user_id,
                         max_parts)  # fmt: skip
            await self._store(row, outcome, parts, emitted)
            if courier is not None:
                await courier.finish()
        except BaseException:
            if courier is not None:
                courier.cancel()
            if draft is not None:
                await draft.close()
            raise
        # The event shows what the user got (censored), not the model's answer; `censored` says words were masked.
        sent.append("\n\n".join(parts) if budget.cut else outcome.text)
        shown = "\n\n".join(text for text in sent if text)
        answer = outcome.exchange.answer if outcome.exchange else None
        censored = bool(answer) and shown.count(REPLACEMENT) > (answer or "").count(REPLACEMENT)
        self._bus.publish(
            "reply.stored", user=row.user_id, inbox_id=row.id, parts=emitted + len(parts),
            text=preview(shown or answer or "", ANSWER_PREVIEW), **({"censored": True} if censored else {}),
        )  # fmt: skip

    async def _store(self, row: InboxRow, outcome: Outcome, parts: list[str], emitted: int) -> None:
        """Everything the answer changes, in one transaction: a crash before it leaves no trace."""
        async with self._db.tx() as conn:
            if outcome.clear_context:
                await ConversationStore.clear_context(conn, row.user_id, row.key)
            if outcome.exchange is not None:
                await ConversationStore.add_exchange(conn, row.id, outcome.exchange)
            await ConversationStore.save_user(conn, row.key, outcome.mode, row.received_at, row.id)
            if outcome.pending_image is not KEEP:
                await ConversationStore.set_pending_image(conn, row.key, outcome.pending_image, row.received_at)
            if outcome.quota_day is not None:
                await UsageStore.count(conn, row.user_id, outcome.quota_day, row.namespace)
            await OutboxStore.add_parts(conn, row, self._format(row), parts, start=emitted)
            await DraftStore.drop(conn, row.id)
            if outcome.image_path is not None:
                start = emitted + len(parts)
                await OutboxStore.add_parts(conn, row, "image", [outcome.image_path], start=start)
            await InboxStore.set_state(conn, row.id, "answered")

    async def _interrupted(self, row: InboxRow, streamed: list[str], draft: str | None) -> None:
        """A streamed answer was cut off by a stop: finish it honestly instead of answering twice. The text that
        was growing in place (`draft`, not stored as a part) ends the message it was shown in, with the note."""
        log.info("pipeline: message %d of %s was cut off mid-answer; sending what was stored", row.id, row.user_id)
        partial = "\n\n".join([*streamed, *([draft] if draft else [])])
        await self._close_with_note(row, partial, "interrupted by a restart", replies.answer_interrupted(), partial,
                                    before=draft)  # fmt: skip

    def _led_by(self, before: str | None, note: str, row: InboxRow) -> list[str]:
        """`before` cut to the channel's limit, and `note` after it: in its last message if it fits, else alone."""
        pieces = split_message(before, self._limit(row)) if before else []
        if pieces and len(f"{pieces[-1]}\n\n{note}".encode()) <= self._limit(row):
            return [*pieces[:-1], f"{pieces[-1]}\n\n{note}"]
        return [*pieces, note]

    async def _failed(self, row: InboxRow, exc: Exception) -> None:
        """Something unforeseen broke while answering: apologise once, record the error, tell the operator."""
        log.exception("pipeline: message %d of %s failed; the user gets an apology", row.id, row.user_id)
        self._bus.publish("error", source="pipeline", user=row.user_id, inbox_id=row.id, error=repr(exc))
        current = await self._inbox.get(row.id)
        if current is None or current.state != "pending":
            return  # the answer was stored before the failure: delivery goes on
        partial = "\n\n".join(await self._outbox.stored(row.id)) or None
        apology = replies.internal_error()
        await self._close_with_note(row, partial, f"internal error: {exc!r}", apology, apology)

    async def _close_with_note(
        self, row: InboxRow, partial: str | None, error: str, note: str, shown: str, *, before: str | None = None
    ) -> None:
        """Record the exchange as it ended (what was sent, and why it stopped), queue `note` after the parts already
        stored — led by `before` (text not stored as a part yet), in as few messages as fit — and mark the message
        answered, in one transaction."""
        exchange = Exchange(
            user_id=row.user_id, mode="", question=row.content, answer=partial, asked_at=row.received_at,
            answered_at=time.time(), error=error, in_context=False, namespace=row.namespace, chat=row.key.chat,
        )  # fmt: skip
        async with self._db.tx() as conn:
            await ConversationStore.add_exchange(conn, row.id, exchange)
            await ConversationStore.saw(conn, row.key, row.id)
            start = await OutboxStore.next_part(conn, row.id)
            await OutboxStore.add_parts(conn, row, self._format(row), self._led_by(before, note, row), start=start)
            await DraftStore.drop(conn, row.id)
            await InboxStore.set_state(conn, row.id, "answered")
        self._bus.publish("reply.stored", user=row.user_id, inbox_id=row.id, parts=1, text=preview(shown))
