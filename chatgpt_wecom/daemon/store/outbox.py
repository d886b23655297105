"""The outbox: the parts of each reply, and whether each reached its channel.

A part is `pending` until sent; `sending` while a request is in flight (so a restart knows the part may already
have arrived); `sent` or `failed` at the end; `merged` when, still untried, it was folded into the part before it
(that part's content then holds both).

Every try of one part is the same request: its `variant` is chosen once, at the first try (distinct from equal
parts sent to the same chat lately), and an image part keeps the media reference of its first upload — so a
transport that deduplicates (WeCom) drops a resend of a part that did arrive.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, replace

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.inbox import InboxRow


@dataclass(frozen=True, slots=True)
class Part:
    id: int
    inbox_id: int
    part: int
    user_id: str
    msg_type: str
    content: str
    state: str
    attempts: int
    variant: int | None = None  # set at the first try, kept for every later one
    media_id: str | None = None  # an image part's upload, reused while it is valid
    media_at: float | None = None
    channel: str = "wecom"
    chat: str = ""  # the recipient: a group's id, or the user's id for a private chat
    message_key: str = ""  # the answered message's inbox dedupe key ("channel:transport id")
    received_at: float = 0.0  # when the answered message was stored
    payload: str = "{}"  # the answered message's payload (JSON)


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def add_parts(
        conn: aiosqlite.Connection, row: InboxRow, msg_type: str, parts: Sequence[str], start: int = 0
    ) -> None:
        """Queue parts of the reply to `row` (numbered from `start`), to its chat, inside the caller's transaction."""
        await conn.executemany(
            "INSERT INTO outbox (inbox_id, part, user_id, msg_type, content, channel, chat)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (inbox_id, part) DO NOTHING",
            [(row.id, n, row.user_id, msg_type, text, row.channel, row.chat or row.user_id)
             for n, text in enumerate(parts, start=start)],
        )  # fmt: skip

    async def stored(self, inbox_id: int) -> list[str]:
        """The contents of every part stored for a message, in order (sent or not; merged ones once)."""
        rows = await self._db.fetchall(
            "SELECT content FROM outbox WHERE inbox_id = ? AND state != 'merged' ORDER BY part", (inbox_id,)
        )
        return [r[0] for r in rows]

    @staticmethod
    async def next_part(conn: aiosqlite.Connection, inbox_id: int) -> int:
        """The number the next part of a message gets (after every stored one, merged ones included)."""
        cur = await conn.execute("SELECT COALESCE(MAX(part) + 1, 0) FROM outbox WHERE inbox_id = ?", (inbox_id,))
        row = await cur.fetchone()
        return int(row[0]) if row else 0

    async def unsent(self, inbox_id: int) -> list[Part]:
        """Parts still to send for one message, in order."""
        rows = await self._db.fetchall(
            "SELECT o.id, o.inbox_id, o.part, o.user_id, o.msg_type, o.content, o.state, o.attempts, o.variant,"
            " o.media_id, o.media_at, o.channel, o.chat, i.dedupe_key, i.received_at, i.payload"
            " FROM outbox o JOIN inbox i ON i.id = o.inbox_id"
            " WHERE o.inbox_id = ? AND o.state IN ('pending', 'sending') ORDER BY o.part",
            (inbox_id,),
        )
        return [Part(*r) for r in rows]

    async def recent_attempts(self, since: float) -> list[tuple[str, str, float]]:
        """(channel, chat, time of the latest try) of every part tried since `since`, oldest first."""
        rows = await self._db.fetchall(
            "SELECT channel, chat, attempted_at FROM outbox WHERE attempted_at > ? ORDER BY attempted_at", (since,)
        )
        return [(r[0], r[1], r[2]) for r in rows]

    async def start_attempt(self, part: Part, now: float, window: float) -> Part:
        """Record a try of `part` (state `sending`) and return it with its variant.

        The first try picks the smallest variant that no equal part to the same chat, tried within `window`
        seconds, has — two answers with the same text then differ in their request — and every later try keeps it.
        """
        async with self._db.tx() as conn:
            variant = part.variant
            if variant is None:
                cur = await conn.execute(
                    "SELECT variant FROM outbox WHERE channel = ? AND chat = ? AND attempted_at > ? AND id != ?"
                    " AND msg_type = ? AND content = ? AND variant IS NOT NULL",
                    (part.channel, part.chat, now - window, part.id, part.msg_type, part.content),
                )
                taken = {r[0] for r in await cur.fetchall()}
                variant = next(v for v in range(len(taken) + 1) if v not in taken)
            await conn.execute(
                "UPDATE outbox SET state = 'sending', attempts = attempts + 1, attempted_at = ?, variant = ?"
                " WHERE id = ?",
                (now, variant, part.id),
            )
        return replace(part, state="sending", attempts=part.attempts + 1, variant=variant)

    async def merge(self, head: Part, rest: Sequence[Part], content: str) -> Part:
        """Fold untried parts `rest` into `head` (untried too): one message instead of several."""
        async with self._db.tx() as conn:
            await conn.execute("UPDATE outbox SET content = ? WHERE id = ?", (content, head.id))
            await conn.executemany(
                "UPDATE outbox SET state = 'merged', last_error = ? WHERE id = ?",
                [(f"sent within part {head.part}", p.id) for p in rest],
            )
        return replace(head, content=content)

    async def set_media(self, part_id: int, media_id: str, at: float) -> None:
        await self._db.execute("UPDATE outbox SET media_id = ?, media_at = ? WHERE id = ?", (media_id, at, part_id))

    async def mark_sent(self, part_id: int) -> None:
        await self._db.execute(
            "UPDATE outbox SET state = 'sent', sent_at = ?, last_error = NULL WHERE id = ?",
            (time.time(), part_id),
        )

    async def mark_retry(self, part_id: int, error: str) -> None:
        """The request failed before WeCom accepted it: back to pending."""
        await self._db.execute("UPDATE outbox SET state = 'pending', last_error = ? WHERE id = ?", (error, part_id))

    async def mark_failed(self, part_id: int, error: str) -> None:
        await self._db.execute("UPDATE outbox SET state = 'failed', last_error = ? WHERE id = ?", (error, part_id))
