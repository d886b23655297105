"""The audit log: who changed what, when, and what it was before and after.

Every change an operator or an admin makes (lists, words, quota resets, a cleared context, pause and resume) and
every list the config file applies is recorded by `audit()` inside the transaction that makes the change, so the
change and its entry are stored together or not at all. `AuditLog` reads it back, newest first.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: float
    actor: str
    action: str
    target: str
    before: Any
    after: Any


async def audit(conn: aiosqlite.Connection, actor: str, action: str, target: str, before: Any, after: Any) -> None:
    """Record a change inside the caller's transaction."""
    await conn.execute(
        "INSERT INTO audit (at, actor, action, target, before, after) VALUES (?, ?, ?, ?, ?, ?)",
        (time.time(), actor, action, target, json.dumps(before, ensure_ascii=False),
         json.dumps(after, ensure_ascii=False)),
    )  # fmt: skip


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def entries(self, limit: int = 100, before_id: int | None = None) -> list[AuditEntry]:
        """Up to `limit` entries, newest first, older than id `before_id` (paging backwards)."""
        rows = await self._db.fetchall(
            "SELECT * FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?", (before_id or 2**62, limit)
        )
        return [
            AuditEntry(r["id"], r["at"], r["actor"], r["action"], r["target"],
                       json.loads(r["before"]) if r["before"] else None,
                       json.loads(r["after"]) if r["after"] else None)
            for r in rows
        ]  # fmt: skip
