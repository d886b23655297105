"""The SQLite database: one aiosqlite connection, WAL, schema migrations, serialized transactions.

All access goes through `Database`: `tx()` for a write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on
error), `fetchall`/`fetchone` for reads. An asyncio lock serializes them so that one coroutine never reads or
writes inside another's open transaction on the shared connection.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite

from chatgpt_wecom.daemon.store.private import report, secure_database
from chatgpt_wecom.daemon.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

Row = aiosqlite.Row


class Database:
    """An open database. Create with `await Database.open(path)`; close with `await db.close()`."""

    def __init__(self, conn: aiosqlite.Connection, path: Path) -> None:
        self._conn = conn
        self._lock = asyncio.Lock()
        self.path = path

    @classmethod
    async def open(cls, path: Path) -> Database:
        # Created 0600 in a 0700 folder before SQLite opens it: its -wal and -shm then get the same mode.
        report(secure_database(path))
        conn = await aiosqlite.connect(path, isolation_level=None)
        db = cls(conn, path)
        try:
            conn.row_factory = aiosqlite.Row
            # WAL: readers never block the writer. synchronous=FULL: a committed inbox row survives a power
            # cut, not only a crash — the callback is acked only after the commit.
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                await conn.execute(f"PRAGMA {pragma}")
            await db._migrate()
        except BaseException:  # not a database, a failed migration: leave no connection (and its thread) behind
            await db.close()
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    async def _migrate(self) -> None:
        row = await (await self._conn.execute("PRAGMA user_version")).fetchone()
        version = int(row[0]) if row else 0
        for number, script in enumerate(MIGRATIONS, start=1):
            if number <= version:
                continue
            log.info("database: applying migration %d", number)
            await self._conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")

    @asynccontextmanager
    async def tx(self) -> AsyncIterator[aiosqlite.Connection]:
        """A write transaction; commits on exit, rolls back on an exception — cancellation included.

        aiosqlite runs a command in its thread even when the awaiting task is cancelled, so a cancelled BEGIN
        or statement still happened: the rollback is shielded and queued behind it, and a transaction somehow
        left open is rolled back before the next one starts. Otherwise one cancelled write would make every
        later BEGIN fail.
        """
        async with self._lock:
            if self._conn.in_transaction:
                await self._conn.rollback()
            try:
                await self._conn.execute("BEGIN IMMEDIATE")
                yield self._conn
                await self._conn.commit()
            except BaseException:
                await asyncio.shield(self._conn.rollback())
                raise

    async def checkpoint_every(self, seconds: float) -> None:
        """Copy the WAL into the database every `seconds` (PASSIVE: it never waits for, or blocks, a writer). The
        inbox writer does not checkpoint on its own (a checkpoint there would hold up the acks of its batch)."""
        while True:
            await asyncio.sleep(seconds)
            await self.execute("PRAGMA wal_checkpoint(PASSIVE)")

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """One statement in its own transaction; returns the rowcount."""
        async with self.tx() as conn:
            cur = await conn.execute(sql, params)
            return cur.rowcount

    async def fetchall(self, sql: str, params: Iterable[Any] = ()) -> list[Row]:
        async with self._lock:
            cur = await self._conn.execute(sql, tuple(params))
            return list(await cur.fetchall())

    async def fetchone(self, sql: str, params: Iterable[Any] = ()) -> Row | None:
        async with self._lock:
            cur = await self._conn.execute(sql, tuple(params))
            return await cur.fetchone()
