"""Small facts the daemon keeps across restarts, one JSON value per key (`daemon_state`).

Today that is whether an operator paused the bot, and with which notice. The value is written inside the caller's
transaction, so a change and its audit entry are stored together.
"""

from __future__ import annotations

import json
from typing import Any

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database


class DaemonState:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, key: str, default: Any = None) -> Any:
        """The value stored under `key` (a stored JSON null reads as None), or `default` if there is none."""
        row = await self._db.fetchone("SELECT value FROM daemon_state WHERE key = ?", (key,))
        return json.loads(row["value"]) if row else default

    @staticmethod
    async def set(conn: aiosqlite.Connection, key: str, value: Any) -> None:
        """Store `value` (JSON) under `key`, inside the caller's transaction."""
        await conn.execute(
            "INSERT INTO daemon_state (key, value) VALUES (?, ?)"
            " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, ensure_ascii=False)),
        )
