"""Retention benchmark: what a short message costs in SQLite, what pruning it leaves, and how long the inbox
writer waits while a prune runs.

Run from the repository root: ``.venv/bin/python bench/retention.py [--messages N]``. Not a test: it prints
figures and exits 0.

1. Stores N short exchanges shaped like real ones (a Chinese question, a ~200-character answer, one sent part,
   WeCom's payload fields) 40 days old, through the real inbox writer; measures the pages in use
   (page_count − freelist_count, after a WAL checkpoint) per message.
2. Prunes them at 30 days with the production batch size and pause while a second task stores a new message
   every 20 ms through the inbox writer (the callback's path), and records each store's latency.
3. Prints the pages in use per pruned message (the tombstone, and inbox pages the emptied rows leave part-empty)
   and after a VACUUM (the tombstone alone).
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.inbox import InboxStore, InboxWriter, NewMessage
from chatgpt_wecom.daemon.store.retention import DAY, RetentionStore

NOW = time.time()
QUESTION = "请帮我把这段话翻译成英文：我们下周一开会讨论项目进度。"
ANSWER = 'Sure! Here is the translation: "We will hold a meeting next Monday to discuss the project\'s progress." ' * 2


def in_use(path: Path) -> int:
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        pages, free, size = (conn.execute(f"PRAGMA {p}").fetchone()[0] for p in ("page_count", "freelist_count",
                                                                                   "page_size"))  # fmt: skip
        return int((pages - free) * size)
    finally:
        conn.close()


async def store(db: Database, inbox: InboxStore, n: int, at: float) -> None:
    key = str(7_300_000_000_000_000_000 + n)
    payload = {"MsgId": key, "ToUserName": "ww1436e0e65a779aee", "CreateTime": str(int(at)), "AgentID": "1000002"}
    inbox_id = await inbox.add(NewMessage(f"wecom:msg:{key}", "zhangsan", "text", QUESTION, at, payload))
    assert inbox_id is not None
    async with db.tx() as conn:
        await conn.execute("UPDATE inbox SET state = 'done' WHERE id = ?", (inbox_id,))
        await conn.execute(
            "INSERT INTO exchanges (inbox_id, user_id, mode, question, answer, model, prompt_tokens,"
            " completion_tokens, asked_at, answered_at, chat) VALUES (?, 'zhangsan', '单聊', ?, ?, 'gpt-4o-mini',"
            " 120, 80, ?, ?, 'zhangsan')",
            (inbox_id, QUESTION, ANSWER, at, at + 3),
        )
        await conn.execute(
            "INSERT INTO outbox (inbox_id, part, user_id, msg_type, content, state, attempts, sent_at, variant,"
            " attempted_at, chat) VALUES (?, 0, 'zhangsan', 'markdown', ?, 'sent', 1, ?, 0, ?, 'zhangsan')",
            (inbox_id, ANSWER, at + 4, at + 4),
        )


async def main(messages: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        db = await Database.open(data / "db.sqlite3")
        inbox = InboxStore(db, await InboxWriter(db.path).open())
        try:
            empty = in_use(db.path)
            for n in range(messages):
                await store(db, inbox, n, NOW - 40 * DAY)
            full = in_use(db.path)

            latencies: list[float] = []
            pruning = asyncio.create_task(RetentionStore(db, data).prune(NOW, 30))
            n = messages
            while not pruning.done():
                started = time.perf_counter()
                await inbox.add(NewMessage(f"wecom:msg:new{n}", "lisi", "text", QUESTION, NOW))
                latencies.append(time.perf_counter() - started)
                n += 1
                await asyncio.sleep(0.02)
            result = await pruning
            pruned = in_use(db.path)
        finally:
            await inbox.close()
            await db.close()
        conn = sqlite3.connect(data / "db.sqlite3")
        conn.execute("DELETE FROM inbox WHERE user_id = 'lisi'")
        conn.commit()
        conn.execute("VACUUM")
        conn.close()
        vacuumed = in_use(data / "db.sqlite3")

    print(f"{messages:,} messages: {(full - empty) / messages:,.0f} B each in use; pruned {result.messages:,}")
    print(f"after the prune: {(pruned - empty) / messages:,.0f} B each still in use; "
          f"after VACUUM: {(vacuumed - empty) / messages:,.0f} B each (the tombstone)")  # fmt: skip
    print(f"freed: {(full - pruned) / messages * 1000 / 1024:,.0f} KB per 1,000 messages")
    ms = sorted(x * 1000 for x in latencies)
    print(f"inbox writer during the prune ({len(ms)} stores): median {statistics.median(ms):.1f} ms, "
          f"max {ms[-1]:.1f} ms")  # fmt: skip


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--messages", type=int, default=10_000)
    asyncio.run(main(parser.parse_args().messages))
