"""The database wrapper: transactions stay usable after failures and cancellation."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.store.db import Database


async def test_a_failed_transaction_rolls_back(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        with pytest.raises(RuntimeError):
            async with db.tx() as conn:
                await conn.execute("INSERT INTO daemon_state (key, value) VALUES ('a', '1')")
                raise RuntimeError("boom")
        assert await db.fetchall("SELECT * FROM daemon_state") == []
    finally:
        await db.close()


async def test_cancelled_writes_leave_the_database_writable(tmp_path: Path) -> None:
    """A write cancelled at any await (e.g. an operator's request abandoned mid-way) must not wedge later ones."""
    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        for n in range(40):

            async def write(n: int = n) -> None:
                async with db.tx() as conn:
                    await conn.execute("INSERT INTO daemon_state (key, value) VALUES (?, '1')", (f"k{n}",))
                    await conn.execute("INSERT INTO daemon_state (key, value) VALUES (?, '2')", (f"j{n}",))

            task = asyncio.create_task(write())
            for _ in range(n % 5):  # cancel at a different point each time
                await asyncio.sleep(0)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            async with db.tx() as conn:  # still writable
                await conn.execute("INSERT INTO daemon_state (key, value) VALUES (?, 'ok')", (f"after{n}",))
        rows = {r["key"] for r in await db.fetchall("SELECT key FROM daemon_state")}
        assert {f"after{n}" for n in range(40)} <= rows
        # each cancelled write is all or nothing
        for n in range(40):
            assert (f"k{n}" in rows) == (f"j{n}" in rows)
    finally:
        await db.close()
