"""User directory benchmark: how long `GET /v1/users`'s query takes on a large database.

Run from the repository root: ``.venv/bin/python bench/users.py [--messages N] [--people N]``. Not a test: it
prints figures and exits 0.

Builds a database through the real migrations with N inbox messages from P people (a third of them DingTalk's,
their payload carrying `sender_nick`), one conversation each holding its latest message's id (as the worker keeps
it, migration 11), and today's exchanges and quota counts for a tenth of them; then times `DirectoryStore.people`
(the median of 5).
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.directory import DirectoryStore

NOW = time.time()
DAY = "2026-01-01"


def person(n: int) -> tuple[str, str]:
    return ("dingtalk" if n % 3 == 0 else "wecom", f"user{n}")


async def fill(db: Database, messages: int, people: int) -> None:
    rng = random.Random(7)
    async with db.tx() as conn:
        rows = []
        latest: dict[tuple[str, str], int] = {}  # each person's latest message id (ids count from 1)
        for i in range(messages):
            namespace, user = person(rng.randrange(people))
            payload = {"sender_nick": f"昵称{user}"} if namespace == "dingtalk" else {"AgentID": "1000002"}
            text = json.dumps(payload, ensure_ascii=False)
            at = NOW - messages + i
            rows.append((f"{namespace}:m{i}", user, "text", "请帮我看看", text, at, namespace, namespace, user, "done"))
            latest[(namespace, user)] = i + 1
        await conn.executemany(
            "INSERT INTO inbox (dedupe_key, user_id, msg_type, content, payload, received_at, channel, namespace,"
            " chat, state) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            rows,
        )
        await conn.executemany(
            "INSERT INTO conversations (namespace, user_id, chat, last_active_at, last_inbox_id)"
            " VALUES (?, ?, ?, ?, ?)",
            [(*person(n), person(n)[1], NOW - 3600, latest.get(person(n))) for n in range(people)],
        )
        active = range(0, people, 10)
        await conn.executemany(
            "INSERT INTO exchanges (user_id, mode, question, answer, asked_at, namespace, chat)"
            " VALUES (?, '单聊', 'q', 'a', ?, ?, ?)",
            [(person(n)[1], NOW - 60, person(n)[0], person(n)[1]) for n in active],
        )
        await conn.executemany(
            "INSERT INTO quota_counts (namespace, user_id, day, used) VALUES (?, ?, ?, 1)",
            [(*person(n), DAY) for n in active],
        )


async def timed(store: DirectoryStore) -> tuple[float, int]:
    runs = []
    found = 0
    for _ in range(5):
        start = time.perf_counter()
        found = len(await store.people(NOW - 86400, DAY))
        runs.append(time.perf_counter() - start)
    return statistics.median(runs), found


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--people", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = await Database.open(Path(folder) / "bench.db")
        try:
            await fill(db, args.messages, args.people)
            took, found = await timed(DirectoryStore(db))
        finally:
            await db.close()
    print(f"{args.messages:,} messages from {args.people:,} people → {found:,} in the directory: {took * 1000:,.0f} ms")


if __name__ == "__main__":
    asyncio.run(main())
