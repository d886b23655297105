"""The small persisted state and the audit log: each written inside the caller's transaction, so a change, its
state and its audit entry are stored together or not at all; both outlive the process."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatgpt_wecom.daemon.store.audit import AuditLog, audit
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.state import DaemonState


async def test_state_is_kept_across_a_reopen_and_a_null_reads_as_none(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    db = await Database.open(path)
    try:
        state = DaemonState(db)
        assert await state.get("paused") is None
        assert await state.get("paused", "absent") == "absent"
        async with db.tx() as conn:
            await DaemonState.set(conn, "paused", {"notice": "维护中", "by": "control:ops"})
    finally:
        await db.close()
    db = await Database.open(path)
    try:
        state = DaemonState(db)
        assert await state.get("paused") == {"notice": "维护中", "by": "control:ops"}
        async with db.tx() as conn:
            await DaemonState.set(conn, "paused", None)  # resumed: stored as null, read as "not paused"
        assert await state.get("paused", "absent") is None
    finally:
        await db.close()


async def test_a_change_its_state_and_its_audit_entry_roll_back_together(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        with pytest.raises(RuntimeError):
            async with db.tx() as conn:
                await DaemonState.set(conn, "paused", {"notice": None, "by": "ops"})
                await audit(conn, "ops", "pause", "", None, {"notice": "x"})
                raise RuntimeError("the change failed half-way")
        assert await DaemonState(db).get("paused", "absent") == "absent"
        assert await AuditLog(db).entries() == []
    finally:
        await db.close()


async def test_the_audit_log_reads_newest_first_and_pages_backwards(tmp_path: Path) -> None:
    db = await Database.open(tmp_path / "db.sqlite3")
    try:
        for n in range(5):
            async with db.tx() as conn:
                await audit(conn, f"actor{n}", "add_deny", f"用户{n}", [], [f"用户{n}"])
        log = AuditLog(db)
        first = await log.entries(limit=2)
        assert [e.actor for e in first] == ["actor4", "actor3"]
        assert first[0].before == [] and first[0].after == ["用户4"] and first[0].target == "用户4"
        rest = await log.entries(limit=10, before_id=first[-1].id)
        assert [e.actor for e in rest] == ["actor2", "actor1", "actor0"]
    finally:
        await db.close()
