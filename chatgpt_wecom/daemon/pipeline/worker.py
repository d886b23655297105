"""Carries one inbox message to the end: respond, store the answer and its parts atomically, deliver, done.

Each step is recorded, so the work resumes where it stopped after a crash:
- `pending`  → the reply is (re)computed; nothing about it was stored yet.
- `answered` → the reply and its parts are stored; only the parts not yet sent go out.
- `done`     → nothing left to do.
"""

from __future__ import annotations

import logging

from chatgpt_wecom.daemon.control.bus import EventBus, preview
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer
from chatgpt_wecom.daemon.pipeline.responder import Responder
from chatgpt_wecom.daemon.pipeline.split import split_message
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.inbox import InboxRow, InboxStore
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.usage import UsageStore

log = logging.getLogger(__name__)

WECOM_TEXT_LIMIT = 2048  # bytes of UTF-8 per text or markdown message


class Worker:
    def __init__(
        self,
        db: Database,
        inbox: InboxStore,
        responder: Responder,
        deliverer: Deliverer,
        bus: EventBus,
        *,
        reply_format: str,
    ) -> None:
        self._db = db
        self._inbox = inbox
        self._responder = responder
        self._deliverer = deliverer
        self._bus = bus
        self.reply_format = reply_format  # replaced on reload

    async def process(self, inbox_id: int) -> None:
        row = await self._inbox.get(inbox_id)
        if row is None or row.state == "done":
            return
        if row.state == "pending":
            await self._answer(row)
        await self._deliverer.deliver(row.id)
        await self._inbox.mark_done(row.id)
        self._bus.publish("message.done", user=row.user_id, inbox_id=row.id)

    async def _answer(self, row: InboxRow) -> None:
        outcome = await self._responder.respond(row)
        parts = split_message(outcome.text, WECOM_TEXT_LIMIT)
        async with self._db.tx() as conn:
            if outcome.clear_context:
                await ConversationStore.clear_context(conn, row.user_id)
            if outcome.exchange is not None:
                await ConversationStore.add_exchange(conn, row.id, outcome.exchange)
            await ConversationStore.save_user(conn, row.user_id, outcome.mode, row.received_at)
            if outcome.quota_day is not None:
                await UsageStore.count(conn, row.user_id, outcome.quota_day)
            await OutboxStore.add_parts(conn, row.id, row.user_id, self.reply_format, parts)
            await InboxStore.set_state(conn, row.id, "answered")
        self._bus.publish(
            "reply.stored", user=row.user_id, inbox_id=row.id, parts=len(parts), text=preview(outcome.text)
        )
