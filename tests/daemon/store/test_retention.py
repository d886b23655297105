"""Retention's queries on a real SQLite file: what goes, what stays, in batches, and what a dry run reports."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from chatgpt_wecom.daemon.store.audit import AuditLog
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.inbox import InboxStore, InboxWriter, NewMessage
from chatgpt_wecom.daemon.store.retention import DAY, TOMBSTONE_DAYS, RetentionStore

NOW = 1_800_000_000.0


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = await Database.open(tmp_path / "data" / "db.sqlite3")
    try:
        yield database
    finally:
        await database.close()


@pytest.fixture
async def inbox(db: Database) -> AsyncIterator[InboxStore]:
    store = InboxStore(db, await InboxWriter(db.path).open())
    try:
        yield store
    finally:
        await store.close()


async def _message(
    db: Database, inbox: InboxStore, key: str, age_days: float, *, state: str = "done", parts: tuple[str, ...] = ()
) -> int:
    """A message received `age_days` ago with its exchange, reply parts (their states), a draft and a file."""
    inbox_id = await inbox.add(NewMessage(f"wecom:{key}", "u1", "text", f"question {key}", NOW - age_days * DAY,
                                          {"MsgId": key}))  # fmt: skip
    assert inbox_id is not None
    async with db.tx() as conn:
        await conn.execute("UPDATE inbox SET state = ? WHERE id = ?", (state, inbox_id))
        await conn.execute(
            "INSERT INTO exchanges (inbox_id, user_id, mode, question, answer, prompt_tokens, completion_tokens,"
            " asked_at, chat) VALUES (?, 'u1', '单聊', ?, 'answer', 10, 20, ?, 'u1')",
            (inbox_id, f"question {key}", NOW - age_days * DAY),
        )
        await conn.executemany(
            "INSERT INTO outbox (inbox_id, part, user_id, msg_type, content, state, chat)"
            " VALUES (?, ?, 'u1', 'text', 'answer', ?, 'u1')",
            [(inbox_id, n, part_state) for n, part_state in enumerate(parts)],
        )
        await conn.execute("INSERT INTO drafts (inbox_id, text, updated_at) VALUES (?, 'so far', ?)", (inbox_id, NOW))
    folder = db.path.parent / ("images" if inbox_id % 2 else "uploads")
    folder.mkdir(exist_ok=True)
    (folder / f"{inbox_id}.png").write_bytes(b"x" * 100)
    return inbox_id


def _rows(db: Database, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db.path) as conn:
        return conn.execute(sql, params).fetchall()


def _files(db: Database) -> set[str]:
    return {f"{p.parent.name}/{p.name}" for p in db.path.parent.glob("*/*.png")}


async def test_old_finished_messages_go_in_batches_and_the_rest_stays(db: Database, inbox: InboxStore) -> None:
    old = [await _message(db, inbox, f"old{n}", 40, parts=("sent", "failed")) for n in range(5)]
    unfinished = await _message(db, inbox, "open", 40, state="answered", parts=("pending",))
    unsent = await _message(db, inbox, "unsent", 40, parts=("sent", "sending"))  # done, yet a part is in flight
    recent = await _message(db, inbox, "new", 10, parts=("sent",))
    async with db.tx() as conn:
        await conn.execute("INSERT INTO quota_counts (namespace, user_id, day, used) VALUES ('wecom', 'u1', 'd', 7)")

    result = await RetentionStore(db, db.path.parent, batch=2, pause=0).prune(NOW, 30, actor="control:ops")

    assert (result.messages, result.exchanges, result.parts, result.drafts) == (5, 5, 10, 5)
    assert (result.files, result.file_bytes, result.tombstones) == (5, 500, 0)
    assert (result.oldest_kept, result.newest_kept) == (NOW - 40 * DAY, NOW - 10 * DAY)
    kept = [unfinished, unsent, recent]
    assert [r[0] for r in _rows(db, "SELECT inbox_id FROM exchanges ORDER BY inbox_id")] == kept
    assert sorted({r[0] for r in _rows(db, "SELECT inbox_id FROM outbox")}) == kept
    assert [r[0] for r in _rows(db, "SELECT inbox_id FROM drafts ORDER BY inbox_id")] == kept
    assert _files(db) == {f"{'images' if n % 2 else 'uploads'}/{n}.png" for n in kept}
    tombstones = _rows(db, "SELECT id, dedupe_key, content, payload, state FROM inbox WHERE pruned_at IS NOT NULL")
    assert tombstones == [(n, f"wecom:old{i}", "", "{}", "done") for i, n in enumerate(old)]
    assert _rows(db, "SELECT content FROM inbox WHERE id = ?", (recent,)) == [("question new",)]
    assert _rows(db, "SELECT used FROM quota_counts") == [(7,)]
    [entry] = await AuditLog(db).entries()
    assert (entry.actor, entry.action, entry.target) == ("control:ops", "prune", "older than 30 days")
    assert entry.after["messages"] == 5 and entry.after["files"] == 5 and entry.before["retention_days"] == 30

    again = await RetentionStore(db, db.path.parent, pause=0).prune(NOW, 30)
    assert again.removed == 0
    assert len(await AuditLog(db).entries()) == 1  # a run that removed nothing is not audited


async def test_a_pruned_message_id_is_still_a_duplicate(db: Database, inbox: InboxStore) -> None:
    await _message(db, inbox, "m1", 40)
    await RetentionStore(db, db.path.parent, pause=0).prune(NOW, 30)
    assert await inbox.add(NewMessage("wecom:m1", "u1", "text", "question m1", NOW)) is None  # the writer's dedupe
    assert await inbox.add(NewMessage("wecom:m2", "u1", "text", "question m2", NOW)) is not None


async def test_a_dry_run_counts_what_the_prune_then_removes_and_changes_nothing(
    db: Database, inbox: InboxStore
) -> None:
    for n in range(3):
        await _message(db, inbox, f"old{n}", 40, parts=("sent",))
    await _message(db, inbox, "open", 40, state="pending")
    await _message(db, inbox, "new", 1, parts=("sent",))
    dump = "\n".join(sqlite3.connect(db.path).iterdump())
    files = _files(db)
    store = RetentionStore(db, db.path.parent, batch=2, pause=0)

    dry = await store.prune(NOW, 30, dry_run=True)

    assert "\n".join(sqlite3.connect(db.path).iterdump()) == dump and _files(db) == files
    assert await AuditLog(db).entries() == []
    real = await store.prune(NOW, 30)
    assert dry.counts() == real.counts()
    assert (dry.messages, dry.parts, dry.files, dry.oldest_kept) == (3, 3, 3, NOW - 40 * DAY)


async def test_tombstones_go_a_month_later_but_never_the_newest_row(db: Database, inbox: InboxStore) -> None:
    ancient = [await _message(db, inbox, f"a{n}", 30 + TOMBSTONE_DAYS + 5) for n in range(3)]
    store = RetentionStore(db, db.path.parent, batch=1, pause=0)
    await store.prune(NOW - 10 * DAY, 30)  # pruned ten days ago: tombstones, not yet old enough to drop
    assert [r[0] for r in _rows(db, "SELECT id FROM inbox WHERE pruned_at IS NOT NULL")] == ancient

    result = await store.prune(NOW, 30)

    assert result.tombstones == 2  # the newest row stays, or SQLite would give its id to the next message
    assert _rows(db, "SELECT id, dedupe_key FROM inbox") == [(ancient[2], "wecom:a2")]
    assert json.loads(_rows(db, "SELECT after FROM audit ORDER BY id DESC LIMIT 1")[0][0])["tombstones"] == 2


async def test_exchanges_without_a_message_and_an_old_kept_picture_go_too(db: Database, inbox: InboxStore) -> None:
    async with db.tx() as conn:
        await conn.execute(
            "INSERT INTO exchanges (inbox_id, user_id, mode, question, answer, asked_at, chat)"
            " VALUES (NULL, 'u1', '单聊', 'q', 'a', ?, 'u1'), (NULL, 'u1', '单聊', 'q2', 'a2', ?, 'u1')",
            (NOW - 40 * DAY, NOW - DAY),
        )
        await conn.execute(
            "INSERT INTO conversations (namespace, user_id, chat, mode, pending_image, pending_image_at)"
            " VALUES ('wecom', 'u1', 'u1', '串聊', 'uploads/1.png', ?),"
            " ('wecom', 'u2', 'u2', NULL, 'uploads/2.png', ?)",
            (NOW - 40 * DAY, NOW - DAY),
        )
    store = RetentionStore(db, db.path.parent, pause=0)
    assert (await store.prune(NOW, 30, dry_run=True)).exchanges == 1

    assert (await store.prune(NOW, 30)).exchanges == 1

    assert _rows(db, "SELECT question FROM exchanges") == [("q2",)]
    assert _rows(db, "SELECT user_id, mode, pending_image FROM conversations ORDER BY user_id") == [
        ("u1", "串聊", None),  # the mode survives
        ("u2", None, "uploads/2.png"),
    ]


async def test_days_must_be_positive(db: Database) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        await RetentionStore(db, db.path.parent).prune(NOW, 0)
