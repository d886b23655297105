"""The outbox: the parts of each reply, and whether each reached WeCom.

A part is `pending` until sent; `sending` while a request is in flight (so a restart knows the part may already
have arrived and asks WeCom to drop a duplicate); `sent` or `failed` at the end.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database


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


class OutboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    @staticmethod
    async def add_parts(
        conn: aiosqlite.Connection,
        inbox_id: int,
        user_id: str,
        msg_type: str,
        parts: Sequence[str],
        start: int = 0,
    ) -> None:
        """Queue a reply's parts (numbered from `start`) inside the caller's transaction."""
        await conn.executemany(
            "INSERT INTO outbox (inbox_id, part, user_id, msg_type, content) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (inbox_id, part) DO NOTHING",
            [(inbox_id, n, user_id, msg_type, text) for n, text in enumerate(parts, start=start)],
        )

    async def stored(self, inbox_id: int) -> list[str]:
        """The contents of every part stored for a message, in order (sent or not)."""
        rows = await self._db.fetchall("SELECT content FROM outbox WHERE inbox_id = ? ORDER BY part", (inbox_id,))
        return [r[0] for r in rows]

    async def unsent(self, inbox_id: int) -> list[Part]:
        """Parts still to send for one message, in order."""
        rows = await self._db.fetchall(
            "SELECT id, inbox_id, part, user_id, msg_type, content, state, attempts FROM outbox"
            " WHERE inbox_id = ? AND state IN ('pending', 'sending') ORDER BY part",
            (inbox_id,),
        )
        return [Part(*r) for r in rows]

    async def mark_sending(self, part_id: int) -> None:
        await self._db.execute("UPDATE outbox SET state = 'sending', attempts = attempts + 1 WHERE id = ?", (part_id,))

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
