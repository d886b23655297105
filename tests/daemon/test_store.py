"""The database wrapper: transactions stay usable after failures and cancellation; its files are private."""

from __future__ import annotations

import asyncio
import logging
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.store.db import Database, NewerDatabaseError, UnusableDatabaseError, stored_schema
from chatgpt_wecom.daemon.store.schema import MIGRATIONS


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


async def test_the_database_and_its_wal_and_shm_are_0600_under_a_loose_umask(tmp_path: Path) -> None:
    folder, old = tmp_path / "data", os.umask(0o022)
    try:
        db = await Database.open(folder / "db.sqlite3")
        try:
            await db.execute("INSERT INTO daemon_state (key, value) VALUES ('a', '1')")
            files = [folder / name for name in ("db.sqlite3", "db.sqlite3-wal", "db.sqlite3-shm")]
            assert {path.name: oct(mode(path)) for path in files} == {path.name: "0o600" for path in files}
            assert mode(folder) == 0o700
        finally:
            await db.close()
    finally:
        os.umask(old)


async def test_an_existing_database_readable_by_others_is_tightened(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "db.sqlite3"
    sqlite3.connect(path).close()  # as an older version left it: 0644 under the usual umask
    os.chmod(path, 0o644)
    os.chmod(tmp_path, 0o755)
    caplog.set_level(logging.INFO, logger="chatgpt_wecom")
    db = await Database.open(path)
    await db.close()
    assert (mode(path), mode(tmp_path)) == (0o600, 0o700)
    [line] = [r.getMessage() for r in caplog.records if "tightened" in r.getMessage()]
    assert f"{tmp_path} 0755→0700" in line and f"{path} 0644→0600" in line


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


RELEASE_0_1_0 = Path(__file__).resolve().parent.parent / "data" / "release-0.1.0.sql"  # its schema: version 4


async def test_a_new_database_is_created_in_one_log_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="chatgpt_wecom.daemon.store.db")
    path = tmp_path / "db.sqlite3"
    db = await Database.open(path)
    await db.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "chatgpt_wecom.daemon.store.db"]
    assert lines == [f"database: created {path} at schema version {len(MIGRATIONS)}"]
    assert stored_schema(path) == len(MIGRATIONS)


async def test_an_older_database_is_upgraded_with_a_line_before_and_after(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="chatgpt_wecom.daemon.store.db")
    path = tmp_path / "db.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.executescript(RELEASE_0_1_0.read_text(encoding="utf-8"))
    conn.close()
    assert stored_schema(path) == 4
    db = await Database.open(path)
    await db.close()
    lines = [r.getMessage() for r in caplog.records if r.name == "chatgpt_wecom.daemon.store.db"]
    assert len(lines) == 2, lines
    assert lines[0] == f"database: upgrading {path} from schema version 4 to {len(MIGRATIONS)}"
    assert lines[1].startswith(f"database: upgraded to schema version {len(MIGRATIONS)} in ")
    assert stored_schema(path) == len(MIGRATIONS)
    caplog.clear()
    db = await Database.open(path)  # at the latest version: nothing to say
    await db.close()
    assert [r for r in caplog.records if r.name == "chatgpt_wecom.daemon.store.db"] == []


async def test_a_database_from_a_newer_release_is_refused_and_left_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await (await Database.open(path)).close()
    newer = len(MIGRATIONS) + 1
    with sqlite3.connect(path) as conn:  # what a later release's migration would have done
        conn.execute("CREATE TABLE from_the_future (x)")
        conn.execute(f"PRAGMA user_version = {newer}")
    conn.close()
    before = path.read_bytes()
    said = (
        f"{path} is at schema version {newer}, from a newer chatgpt-wecom (this release knows up to "
        f"{len(MIGRATIONS)}): run that release, or restore the copy of data_dir made before the upgrade"
    )
    with pytest.raises(NewerDatabaseError) as refused:
        await Database.open(path)
    assert str(refused.value) == said
    with pytest.raises(NewerDatabaseError) as refused:  # what `check` reads says the same
        stored_schema(path)
    assert str(refused.value) == said
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == newer
    conn.close()
    assert path.read_bytes() == before


async def test_the_stored_schema_is_read_without_making_any_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    await (await Database.open(path)).close()  # WAL: a reader would normally make -wal and -shm
    assert os.listdir(tmp_path) == ["db.sqlite3"]
    assert stored_schema(path) == len(MIGRATIONS)
    assert os.listdir(tmp_path) == ["db.sqlite3"]


async def test_a_damaged_database_is_named_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"not a database, " * 512)
    said = (
        f"{path} is damaged or is not a database (file is not a database): move it away (the daemon then starts "
        "with an empty one) or restore it from a backup"
    )
    with pytest.raises(UnusableDatabaseError) as refused:
        await Database.open(path)
    assert str(refused.value) == said
    with pytest.raises(UnusableDatabaseError) as refused:
        stored_schema(path)
    assert str(refused.value) == said
    assert stored_schema(tmp_path / "missing.sqlite3") is None  # not damage: nothing to read
