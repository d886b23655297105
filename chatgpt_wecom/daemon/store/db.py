"""The SQLite database: one aiosqlite connection, WAL, schema migrations, serialized transactions.

All access goes through `Database`: `tx()` for a write transaction (BEGIN IMMEDIATE … COMMIT, rolled back on
error), `fetchall`/`fetchone` for reads. An asyncio lock serializes them so that one coroutine never reads or
writes inside another's open transaction on the shared connection.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager, closing
from pathlib import Path
from typing import Any

import aiosqlite

from chatgpt_wecom.daemon.store.private import report, secure_database
from chatgpt_wecom.daemon.store.schema import MIGRATIONS

log = logging.getLogger(__name__)

Row = aiosqlite.Row


class UnusableDatabaseError(Exception):
    """The database file cannot be used as it is — damaged, not a database, or a newer release's: a restart cannot
    help. The message names the file and what to do."""


class NewerDatabaseError(UnusableDatabaseError):
    """The database was migrated by a newer release than this one: its schema is unknown here, so it is not used."""


def known_schema(path: Path, version: int) -> int:
    """`version`, the schema version read from `path`, when this release knows it; else NewerDatabaseError."""
    if version > len(MIGRATIONS):
        raise NewerDatabaseError(
            f"{path} is at schema version {version}, from a newer chatgpt-wecom (this release knows up to "
            f"{len(MIGRATIONS)}): run that release, or restore the copy of data_dir made before the upgrade"
        )
    return version


def damaged(path: Path, exc: sqlite3.DatabaseError) -> UnusableDatabaseError | None:
    """The error to report when `exc` says the file is not a database or is corrupt; None for other errors (a
    full disk, a lock), which a later start may not meet."""
    if exc.sqlite_errorcode not in (sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT):
        return None
    return UnusableDatabaseError(
        f"{path} is damaged or is not a database ({exc}): move it away (the daemon then starts with an empty one) "
        "or restore it from a backup"
    )


def stored_schema(path: Path) -> int | None:
    """The schema version in the database file at `path`, for `check`: read as an immutable file, so nothing is
    written and no -wal or -shm file is made (a `sudo check` must not leave files the daemon's user cannot open).
    A running daemon's last minutes may still be in its -wal file; that is not read. A damaged file or a newer
    release's schema raises UnusableDatabaseError; None when it cannot be read for another reason."""
    try:
        with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)) as conn:
            row = conn.execute("PRAGMA user_version").fetchone()
    except sqlite3.DatabaseError as exc:
        if (unusable := damaged(path, exc)) is not None:
            raise unusable from exc
        return None
    return known_schema(path, int(row[0])) if row else None


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
            row = await (await conn.execute("PRAGMA user_version")).fetchone()
            version = known_schema(path, int(row[0]) if row else 0)  # before anything is written to it
            # WAL: readers never block the writer. synchronous=FULL: a committed inbox row survives a power
            # cut, not only a crash — the callback is acked only after the commit.
            for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON", "busy_timeout=5000"):
                await conn.execute(f"PRAGMA {pragma}")
            await db._migrate(version)
        except BaseException as exc:  # not a database, a newer release's, a failed migration: leave no connection
            await db.close()
            if isinstance(exc, sqlite3.DatabaseError) and (unusable := damaged(path, exc)) is not None:
                raise unusable from exc
            raise
        return db

    async def close(self) -> None:
        async with self._lock:
            await self._conn.close()

    async def _migrate(self, version: int) -> None:
        """Bring the schema from `version` to this release's, one transaction per migration; a line in the log
        before and after an upgrade, one for a new database."""
        latest = len(MIGRATIONS)
        if version == latest:
            return
        started = time.monotonic()
        if version:
            log.info("database: upgrading %s from schema version %d to %d", self.path, version, latest)
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            log.debug("database: applying migration %d", number)
            await self._conn.executescript(f"BEGIN IMMEDIATE;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
        if version:
            log.info("database: upgraded to schema version %d in %.1f s", latest, time.monotonic() - started)
        else:
            log.info("database: created %s at schema version %d", self.path, latest)

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
