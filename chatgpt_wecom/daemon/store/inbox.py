"""The inbox: every accepted callback, committed before WeCom gets its 200.

`add()` is called by the callback handler and returns only after the row is durable. Concurrent calls are
group-committed: whatever arrives while one transaction is being written goes into the next one, so 200
simultaneous callbacks cost a handful of fsyncs, not 200.

The inbox is written through a connection of its own, on a thread of its own, one hop per batch: an ack never
waits behind the answer pipeline's transactions on the shared connection (a lone ack went from ~10 ms to ~3 ms
in bench/callback.py). SQLite (WAL) serializes the two writers itself; readers on the shared connection see a
row as soon as it is committed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiosqlite

from chatgpt_wecom.daemon.store.conversations import ChatKey
from chatgpt_wecom.daemon.store.db import Database, Row


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to store. `dedupe_key` is unique across channels (the intake prefixes the channel's name)."""

    dedupe_key: str
    user_id: str
    msg_type: str
    content: str
    received_at: float
    payload: dict[str, str] = field(default_factory=dict)
    channel: str = "wecom"
    namespace: str = "wecom"
    chat: str = ""  # a group's id, or the user's id for a private chat ("" is taken as the latter)


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    user_id: str
    msg_type: str
    content: str
    payload: dict[str, Any]
    received_at: float
    state: str
    channel: str = "wecom"
    namespace: str = "wecom"
    chat: str = ""
    dedupe_key: str = ""  # "channel:transport id"

    @property
    def private(self) -> bool:
        return self.chat in ("", self.user_id)

    @property
    def key(self) -> ChatKey:
        """The conversation this message belongs to: its sender in its chat."""
        return ChatKey(self.namespace, self.user_id, self.chat or self.user_id)

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
            channel=row["channel"],
            namespace=row["namespace"],
            chat=row["chat"],
            dedupe_key=row["dedupe_key"],
        )


_Waiter = tuple[NewMessage, "asyncio.Future[int | None]"]
T = TypeVar("T")


# One encoder for every row: json.dumps with an option builds a new JSONEncoder per call (4 µs against 2 µs).
_payload_json = json.JSONEncoder(ensure_ascii=False).encode

_INSERT = (
    "INSERT INTO inbox (dedupe_key, user_id, msg_type, content, payload, received_at, channel, namespace, chat)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (dedupe_key) DO NOTHING"
)


class InboxWriter:
    """A plain sqlite3 connection living on one dedicated thread; each batch is one call on that thread."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inbox-writer")
        self._conn: sqlite3.Connection | None = None

    async def open(self) -> InboxWriter:
        await self._run(self._connect)
        return self

    def _connect(self) -> None:
        conn = sqlite3.connect(self._path, isolation_level=None)
        # No checkpoints on this connection: one in a batch's commit held up every ack waiting on it (the daemon
        # checkpoints every few seconds from the other connection: Database.checkpoint_every).
        for pragma in ("synchronous=FULL", "busy_timeout=5000", "wal_autocheckpoint=0"):
            conn.execute(f"PRAGMA {pragma}")
        self._conn = conn

    async def insert(self, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        """Insert `rows` in one transaction; the ids of the rows that were new, by dedupe key."""
        return await self._run(self._insert, rows)

    def _insert(self, rows: list[tuple[Any, ...]]) -> dict[str, int]:
        conn = self._conn
        assert conn is not None
        conn.execute("BEGIN IMMEDIATE")
        try:
            before = conn.execute("SELECT coalesce(max(id), 0) FROM inbox").fetchone()[0]
            conn.executemany(_INSERT, rows)
            new = {
                key: row_id for row_id, key in conn.execute("SELECT id, dedupe_key FROM inbox WHERE id > ?", (before,))
            }
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        return new

    async def close(self) -> None:
        if self._conn is not None:
            await self._run(self._conn.close)
            self._conn = None
        self._thread.shutdown(wait=True)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)


class InboxStore:
    def __init__(self, db: Database, writer: InboxWriter) -> None:
        self._db = db
        self._inbox_writer = writer
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
            (m.dedupe_key, m.user_id, m.msg_type, m.content, _payload_json(m.payload), m.received_at,
             m.channel, m.namespace, m.chat or m.user_id)
            for m in messages
        ]  # fmt: skip
        return await self._inbox_writer.insert(rows)

    async def flush(self) -> None:
        """Wait until every add() so far has been written."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        """Write what is waiting, then close the writer's connection and thread."""
        await self.flush()
        await self._inbox_writer.close()

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
