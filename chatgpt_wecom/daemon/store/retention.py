"""Retention: what is older than `retention_days` is deleted in short batches; what must outlive it stays.

A message is pruned when it is `done`, was received before the cutoff and has no reply part still to send. Its
exchange, reply parts and draft are deleted, and its inbox row becomes a tombstone: content and payload emptied,
`pruned_at` set, the dedupe key kept — so a late retry of its message id is still a duplicate (the inbox writer's
`ON CONFLICT (dedupe_key) DO NOTHING` needs nothing else). A tombstone is dropped `TOMBSTONE_DAYS` after its
message was due (transports retry within minutes; a tombstone still takes ~0.35 KB of the file, a third of a
message), never the newest row (SQLite would give its id to the next message). The media
files named by a pruned message's id (`images/`, `uploads/`) are deleted after its rows. A picture kept for a
next question older than the cutoff is forgotten with its file.

What survives: quota counts, the audit log, users' verdicts, each conversation's mode, the lists and words.

Each batch is one short write transaction of `batch` messages; between two the inbox writer (another connection)
gets the database (`pause`: longer than SQLite's longest busy-wait step, 100 ms); files are listed and deleted
in a thread. A dry run reads the same batches and changes nothing.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import aiosqlite

from chatgpt_wecom.daemon.store.audit import audit
from chatgpt_wecom.daemon.store.db import Database, Row
from chatgpt_wecom.daemon.store.private import MEDIA_FOLDERS

DAY = 86_400.0
TOMBSTONE_DAYS = 30  # how long a pruned message's dedupe key outlives the retention period
BATCH = 500  # messages per transaction
PAUSE = 0.15  # seconds between two batches

_UNSENT = "EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_id = i.id AND o.state IN ('pending', 'sending'))"
_CANDIDATES = (
    "SELECT id, received_at FROM inbox i WHERE pruned_at IS NULL AND received_at < ? AND state = 'done'"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_id = i.id AND o.state IN ('pending', 'sending'))"
    " AND (received_at, id) > (?, ?) ORDER BY received_at, id LIMIT ?"
)
_KEPT_OLD = (  # the rows older than the cutoff that stay: unfinished, or with parts still to send
    "SELECT min(received_at), max(received_at) FROM inbox i WHERE pruned_at IS NULL AND received_at < ?"
    " AND (state != 'done'"
    "      OR EXISTS (SELECT 1 FROM outbox o WHERE o.inbox_id = i.id AND o.state IN ('pending', 'sending')))"
)
_KEPT_NEW = "SELECT min(received_at), max(received_at) FROM inbox WHERE pruned_at IS NULL AND received_at >= ?"
_TOMBSTONES = "FROM inbox WHERE pruned_at IS NOT NULL AND received_at < ? AND id < (SELECT max(id) FROM inbox)"
_LOOSE_EXCHANGES = "FROM exchanges WHERE inbox_id IS NULL AND asked_at < ?"  # from before the inbox linked them


@dataclass(frozen=True, slots=True)
class Pruned:
    """What a prune removed (or, dry, would remove), and the span of the messages it keeps."""

    days: int
    cutoff: float
    dry_run: bool
    messages: int = 0  # messages emptied to a tombstone
    exchanges: int = 0
    parts: int = 0  # reply parts (outbox rows)
    drafts: int = 0
    files: int = 0  # images and uploads
    file_bytes: int = 0
    tombstones: int = 0  # tombstones dropped (TOMBSTONE_DAYS past the cutoff)
    oldest_kept: float | None = None  # received_at of the oldest and newest messages kept whole
    newest_kept: float | None = None

    @property
    def removed(self) -> int:
        return self.messages + self.exchanges + self.parts + self.drafts + self.files + self.tombstones

    def counts(self) -> dict[str, int]:
        return {k: v for k, v in asdict(self).items() if k not in ("days", "cutoff", "dry_run")
                and isinstance(v, int)}  # fmt: skip


Query = Callable[[str, Sequence[Any]], Awaitable[list[Row]]]
After = tuple[float, int]  # (received_at, id) of the last message of the previous batch


def _marks(ids: Sequence[int]) -> str:
    return ",".join("?" * len(ids))


@dataclass
class _Tally:
    values: dict[str, int] = field(default_factory=dict)

    def add(self, key: str, n: int) -> None:
        self.values[key] = self.values.get(key, 0) + n


class RetentionStore:
    def __init__(self, db: Database, data_dir: Path, *, batch: int = BATCH, pause: float = PAUSE) -> None:
        self._db = db
        self._data_dir = data_dir
        self._batch = batch
        self._pause = pause

    async def prune(self, now: float, days: int, *, dry_run: bool = False, actor: str = "retention") -> Pruned:
        """Prune what was received more than `days` days before `now` (dry: only count it). A run that removed
        anything is audited as `prune` by `actor`, with its counts."""
        if days < 1:
            raise ValueError("days must be at least 1")
        cutoff = now - days * DAY
        tally = _Tally()
        after: After = (float("-inf"), 0)
        while True:
            if dry_run:
                last = await self._batch_counts(self._db.fetchall, cutoff, after, tally)
            else:
                async with self._db.tx() as conn:
                    last = await self._batch_prune(conn, cutoff, after, now, tally)
            if last is None:
                break
            after = last
            await asyncio.sleep(self._pause)  # the inbox writer's turn
        await self._loose_exchanges(cutoff, dry_run, tally)
        files, size = await self._files(cutoff, dry_run)
        tally.add("files", files)
        tally.add("file_bytes", size)
        tombstone_cutoff = cutoff - TOMBSTONE_DAYS * DAY
        oldest, newest = await self._kept_span(cutoff)
        result = Pruned(days, cutoff, dry_run, oldest_kept=oldest, newest_kept=newest, **tally.values)
        if dry_run:
            row = await self._db.fetchone(f"SELECT count(*) {_TOMBSTONES}", (tombstone_cutoff,))
            return replace(result, tombstones=int(row[0]) if row else 0)
        drop = f"DELETE FROM inbox WHERE id IN (SELECT id {_TOMBSTONES} LIMIT ?)"  # noqa: S608
        result = replace(result, tombstones=await self._delete_in_batches(drop, tombstone_cutoff))
        async with self._db.tx() as conn:
            await conn.execute(
                "UPDATE conversations SET pending_image = NULL, pending_image_at = NULL WHERE pending_image_at < ?",
                (cutoff,),
            )
            if result.removed:
                await audit(conn, actor, "prune", f"older than {days} days",
                            {"retention_days": days, "cutoff": cutoff}, result.counts())  # fmt: skip
        return result

    async def _batch_counts(self, query: Query, cutoff: float, after: After, tally: _Tally) -> After | None:
        """Count one batch (a dry run); where the next one starts, or None at the end."""
        rows = await query(_CANDIDATES, (cutoff, *after, self._batch))
        if not rows:
            return None
        ids = [int(r[0]) for r in rows]
        tally.add("messages", len(ids))
        for key, table in (("exchanges", "exchanges"), ("parts", "outbox"), ("drafts", "drafts")):
            (found,) = await query(f"SELECT count(*) FROM {table} WHERE inbox_id IN ({_marks(ids)})", ids)  # noqa: S608
            tally.add(key, int(found[0]))
        return (float(rows[-1][1]), ids[-1])

    async def _batch_prune(
        self, conn: aiosqlite.Connection, cutoff: float, after: After, now: float, tally: _Tally
    ) -> After | None:
        """Prune one batch inside the caller's transaction; where the next one starts, or None at the end."""
        rows = list(await (await conn.execute(_CANDIDATES, (cutoff, *after, self._batch))).fetchall())
        if not rows:
            return None
        ids = [int(r[0]) for r in rows]
        marks = _marks(ids)
        for key, table in (("exchanges", "exchanges"), ("parts", "outbox"), ("drafts", "drafts")):
            cur = await conn.execute(f"DELETE FROM {table} WHERE inbox_id IN ({marks})", ids)  # noqa: S608
            tally.add(key, cur.rowcount)
        cur = await conn.execute(
            f"UPDATE inbox SET content = '', payload = '{{}}', pruned_at = ? WHERE id IN ({marks})",  # noqa: S608
            (now, *ids),
        )
        tally.add("messages", cur.rowcount)
        return (float(rows[-1][1]), ids[-1])

    async def _loose_exchanges(self, cutoff: float, dry_run: bool, tally: _Tally) -> None:
        """Exchanges stored without an inbox row (older versions), by when they were asked."""
        if dry_run:
            row = await self._db.fetchone(f"SELECT count(*) {_LOOSE_EXCHANGES}", (cutoff,))
            tally.add("exchanges", int(row[0]) if row else 0)
            return
        sql = f"DELETE FROM exchanges WHERE id IN (SELECT id {_LOOSE_EXCHANGES} LIMIT ?)"  # noqa: S608
        tally.add("exchanges", await self._delete_in_batches(sql, cutoff))

    async def _delete_in_batches(self, sql: str, cutoff: float) -> int:
        """Run `sql` (its parameters: `cutoff`, then the batch size) until it deletes less than a batch; the total."""
        total = 0
        while True:
            deleted = await self._db.execute(sql, (cutoff, self._batch))
            total += deleted
            if deleted < self._batch:
                return total
            await asyncio.sleep(self._pause)

    async def _files(self, cutoff: float, dry_run: bool) -> tuple[int, int]:
        """Media files whose message is pruned (dry: or would be), or no longer stored: (count, bytes) deleted."""
        found = await asyncio.to_thread(_media_files, self._data_dir)
        ids = sorted(found)
        kept: set[int] = set()
        for start in range(0, len(ids), self._batch):
            chunk = ids[start : start + self._batch]
            sql = f"SELECT id FROM inbox i WHERE id IN ({_marks(chunk)}) AND pruned_at IS NULL"  # noqa: S608
            params: list[Any] = list(chunk)
            if dry_run:  # what the prune would leave: newer, unfinished, or with parts to send
                sql += f" AND (received_at >= ? OR state != 'done' OR {_UNSENT})"
                params.append(cutoff)
            kept.update(int(r[0]) for r in await self._db.fetchall(sql, params))
        doomed = [entry for n in ids if n not in kept for entry in found[n]]
        if not dry_run:
            await asyncio.to_thread(_unlink, [path for path, _ in doomed])
        return len(doomed), sum(size for _, size in doomed)

    async def _kept_span(self, cutoff: float) -> tuple[float | None, float | None]:
        spans = [await self._db.fetchone(sql, (cutoff,)) for sql in (_KEPT_OLD, _KEPT_NEW)]
        lows = [float(r[0]) for r in spans if r is not None and r[0] is not None]
        highs = [float(r[1]) for r in spans if r is not None and r[1] is not None]
        return (min(lows) if lows else None, max(highs) if highs else None)


def _media_files(data_dir: Path) -> dict[int, list[tuple[Path, int]]]:
    """The media files under `data_dir` by the inbox id that names them (`<id>.<ext>`), with their sizes."""
    found: dict[int, list[tuple[Path, int]]] = {}
    for folder in MEDIA_FOLDERS:
        try:
            entries = list(os.scandir(data_dir / folder))
        except FileNotFoundError:
            continue
        for entry in entries:
            stem = entry.name.partition(".")[0]
            if not stem.isdigit() or not entry.is_file(follow_symlinks=False):
                continue  # a temporary file (".name.tmp") or something the daemon did not write
            try:
                size = entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue
            found.setdefault(int(stem), []).append((Path(entry.path), size))
    return found


def _unlink(paths: Iterable[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)
