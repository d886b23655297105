"""Checkpoints of answers that grow in place: the text a user has seen so far, kept while the answer is written.

Written every few seconds while the model writes and removed in the transaction that stores the answer; one left
behind means the daemon stopped mid-answer, and the worker finishes that answer from it (what the user saw, and a
note that it was cut) instead of asking the model again for a different one.
"""

from __future__ import annotations

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database


class DraftStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def save(self, inbox_id: int, text: str, at: float) -> None:
        await self._db.execute(
            "INSERT INTO drafts (inbox_id, text, updated_at) VALUES (?, ?, ?)"
            " ON CONFLICT (inbox_id) DO UPDATE SET text = excluded.text, updated_at = excluded.updated_at",
            (inbox_id, text, at),
        )

    async def get(self, inbox_id: int) -> str | None:
        row = await self._db.fetchone("SELECT text FROM drafts WHERE inbox_id = ?", (inbox_id,))
        return str(row["text"]) if row else None

    @staticmethod
    async def drop(conn: aiosqlite.Connection, inbox_id: int) -> None:
        """Forget the checkpoint, inside the transaction that stores what replaces it."""
        await conn.execute("DELETE FROM drafts WHERE inbox_id = ?", (inbox_id,))
