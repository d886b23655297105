"""The one way in: a channel's message is stored in the inbox, announced, and queued for an answer.

Every channel, the playground and the resume after a restart come through here:
- The dedupe key is the channel's own message id prefixed with the channel's name, so two channels' ids never
  collide and a transport's retry of one message is stored once (also across restarts).
- `await intake(channel, message)` returns only once the row is committed: a channel acks its transport after it
  returns — persist before ack. It returns the new row's id, or None for a duplicate (ack it, do nothing else).
  The time that took (`stored_in`, what the ack waits for) rides on `message.received`, or on `message.duplicate`.
- A user's verdict on an answer (`feedback`) is stored (the latest counts) and announced as a `feedback` event.
- A lane per person (the dispatcher runs lanes in parallel): every conversation keeps its order, and one person's
  messages on several chats or channels are answered one at a time — a quota check and its count never interleave
  with the same person's other question.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from chatgpt_wecom.daemon.channels.base import Channel, Feedback, Inbound
from chatgpt_wecom.daemon.events import EventBus, preview
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.store.feedback import FeedbackStore, Verdict
from chatgpt_wecom.daemon.store.inbox import InboxRow, InboxStore, NewMessage


def lane(namespace: str, user_id: str) -> str:
    """The dispatcher lane of one person, whatever the chat or channel."""
    return f"{namespace}:{user_id}"


class Intake:
    def __init__(
        self,
        inbox: InboxStore,
        bus: EventBus,
        dispatcher: Dispatcher,
        clock: Callable[[], float],
        feedback: FeedbackStore,
    ) -> None:
        self._inbox = inbox
        self._feedback = feedback
        self._bus = bus
        self._dispatcher = dispatcher
        self._clock = clock

    async def __call__(self, channel: Channel, message: Inbound) -> int | None:
        chat = message.chat or message.user_id
        stored = NewMessage(
            dedupe_key=f"{channel.name}:{message.dedupe_key}",
            user_id=message.user_id,
            msg_type=message.msg_type,
            content=message.content,
            received_at=self._clock(),
            payload=message.payload,
            channel=channel.name,
            namespace=channel.namespace,
            chat=chat,
        )
        started = time.perf_counter()
        inbox_id = await self._inbox.add(stored)
        stored_in = round(time.perf_counter() - started, 6)
        if inbox_id is None:
            self._bus.publish("message.duplicate", user=message.user_id, channel=channel.name, stored_in=stored_in)
            return None
        self._bus.publish(
            "message.received", user=message.user_id, inbox_id=inbox_id, msg_type=message.msg_type,
            text=preview(message.content), channel=channel.name, chat=chat, source=message.payload.get("source"),
            stored_in=stored_in,
        )  # fmt: skip
        self._dispatcher.submit(lane(channel.namespace, message.user_id), inbox_id)
        return inbox_id

    async def feedback(self, channel: Channel, verdict: Feedback) -> None:
        stored = Verdict(
            channel=channel.name, answer_id=verdict.answer_id, inbox_id=None, namespace=channel.namespace,
            user_id=verdict.user_id, rating=verdict.rating, comment=verdict.comment, reasons=verdict.reasons,
            at=self._clock(),
        )  # fmt: skip
        inbox_id = await self._feedback.record(stored)
        self._bus.publish("feedback", user=verdict.user_id, inbox_id=inbox_id, channel=channel.name,
                          rating=verdict.rating, text=preview(verdict.comment))  # fmt: skip

    def resume(self, rows: Iterable[InboxRow]) -> int:
        """Queue messages accepted before a stop and not finished, oldest first; how many."""
        count = 0
        for row in rows:
            self._dispatcher.submit(lane(row.namespace, row.user_id), row.id)
            count += 1
        return count
