"""The inbox: every accepted callback, committed before WeCom gets its 200.

`add()` is called by the callback handler and returns only after the row is durable. Concurrent calls are
group-committed: whatever arrives while one transaction is being written goes into the next one, so 200
simultaneous callbacks cost a handful of fsyncs, not 200.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database, Row


@dataclass(frozen=True, slots=True)
class NewMessage:
    dedupe_key: str
    user_id: str
    msg_type: str
    content: str
    received_at: float
    payload: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    user_id: str
    msg_type: str
    content: str
    payload: dict[str, Any]
    received_at: float
    state: str

    @classmethod
    def from_row(cls, row: Row) -> InboxRow:
        return cls(
            id=row["id"],
            user_id=row["user_id"],
            msg_type=row["msg_type"],
            content=row["content"],
            payload=json.loads(row["payload"]),
            received_at=row["received_at"],
            state=row["state"],
        )


_Waiter = tuple[NewMessage, "asyncio.Future[int | None]"]


class InboxStore:
    def __init__(self, db: Database) -> None:
        self._db = db
        self._waiting: list[_Waiter] = []
        self._writer: asyncio.Task[None] | None = None

    async def add(self, msg: NewMessage) -> int | None:
        """Persist `msg`; its new row id, or None when its dedupe key was already there (a WeCom retry)."""
        future: asyncio.Future[int | None] = asyncio.get_running_loop().create_future()
        self._waiting.append((msg, future))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_batches(), name="inbox-writer")
        return await future

    async def _write_batches(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                new_ids = await self._insert(m for m, _ in batch)
            except Exception as exc:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for msg, future in batch:
                if not future.done():
                    # pop: of two copies in one batch only the first is new
                    future.set_result(new_ids.pop(msg.dedupe_key, None))

    async def _insert(self, messages: Any) -> dict[str, int]:
        rows = [
            (
                m.dedupe_key,
                m.user_id,
                m.msg_type,
                m.content,
                json.dumps(m.payload, ensure_ascii=False),
                m.received_at,
            )
            for m in messages
        ]
        async with self._db.tx() as conn:
            cur = await conn.execute("SELECT coalesce(max(id), 0) FROM inbox")
            before = (await cur.fetchone() or (0,))[0]
            await conn.executemany(
                "INSERT INTO inbox (dedupe_key, user_id, msg_type, content, payload, received_at)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING",
                rows,
            )
            cur = await conn.execute("SELECT id, dedupe_key FROM inbox WHERE id > ?", (before,))
            return {key: row_id for row_id, key in await cur.fetchall()}

    async def flush(self) -> None:
        """Wait until every add() so far has been written."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def open_rows(self) -> list[InboxRow]:
        """Rows not yet done, oldest first: what a restart must finish."""
        rows = await self._db.fetchall("SELECT * FROM inbox WHERE state != 'done' ORDER BY id")
        return [InboxRow.from_row(r) for r in rows]

    async def get(self, inbox_id: int) -> InboxRow | None:
        row = await self._db.fetchone("SELECT * FROM inbox WHERE id = ?", (inbox_id,))
        return InboxRow.from_row(row) if row else None

    @staticmethod
    async def set_state(conn: aiosqlite.Connection, inbox_id: int, state: str) -> None:
        await conn.execute("UPDATE inbox SET state = ? WHERE id = ?", (state, inbox_id))

    async def mark_done(self, inbox_id: int) -> None:
        await self._db.execute("UPDATE inbox SET state = 'done' WHERE id = ?", (inbox_id,))

    async def count_open(self) -> int:
        row = await self._db.fetchone("SELECT count(*) FROM inbox WHERE state != 'done'")
        return int(row[0]) if row else 0
