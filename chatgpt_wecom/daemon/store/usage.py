"""Daily quota counts and usage figures (questions and tokens per user, per day or month)."""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from chatgpt_wecom.daemon.store.audit import audit
from chatgpt_wecom.daemon.store.db import Database


@dataclass(frozen=True, slots=True)
class Usage:
    questions: int
    tokens: int


@dataclass(frozen=True, slots=True)
class UserUsage:
    user_id: str
    questions: int
    tokens: int


class UsageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def used(self, user_id: str, day: str) -> int:
        """Questions counted against `user_id`'s quota on local `day` (YYYY-MM-DD)."""
        row = await self._db.fetchone("SELECT used FROM quota_usage WHERE user_id = ? AND day = ?", (user_id, day))
        return int(row["used"]) if row else 0

    @staticmethod
    async def count(conn: aiosqlite.Connection, user_id: str, day: str) -> None:
        """One more question for `user_id` on `day`, inside the caller's transaction."""
        await conn.execute(
            "INSERT INTO quota_usage (user_id, day, used) VALUES (?, ?, 1)"
            " ON CONFLICT (user_id, day) DO UPDATE SET used = used + 1",
            (user_id, day),
        )

    async def reset(self, user_id: str | None, day: str, actor: str) -> int:
        """Give `user_id` (None: everyone) a fresh quota for `day`; returns how many counts were cleared."""
        async with self._db.tx() as conn:
            if user_id is None:
                cur = await conn.execute("SELECT coalesce(sum(used), 0) FROM quota_usage WHERE day = ?", (day,))
                before = (await cur.fetchone() or (0,))[0]
                await conn.execute("DELETE FROM quota_usage WHERE day = ?", (day,))
            else:
                cur = await conn.execute(
                    "SELECT coalesce(sum(used), 0) FROM quota_usage WHERE day = ? AND user_id = ?", (day, user_id)
                )
                before = (await cur.fetchone() or (0,))[0]
                await conn.execute("DELETE FROM quota_usage WHERE day = ? AND user_id = ?", (day, user_id))
            await audit(conn, actor, "reset_quota", user_id or "all", {"day": day, "used": before}, {"used": 0})
        return int(before)

    async def usage(self, user_id: str, since: float) -> Usage:
        """Questions answered by the model and tokens spent for `user_id` since unix time `since`."""
        row = await self._db.fetchone(
            "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0) FROM exchanges"
            " WHERE user_id = ? AND asked_at >= ? AND answer IS NOT NULL",
            (user_id, since),
        )
        return Usage(int(row[0]), int(row[1])) if row else Usage(0, 0)

    async def totals(self, since: float) -> tuple[Usage, int]:
        """Everyone's usage since `since`, and how many users that is."""
        row = await self._db.fetchone(
            "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0), count(DISTINCT user_id)"
            " FROM exchanges WHERE asked_at >= ? AND answer IS NOT NULL",
            (since,),
        )
        return (Usage(int(row[0]), int(row[1])), int(row[2])) if row else (Usage(0, 0), 0)

    async def top_users(self, since: float, limit: int = 5) -> list[UserUsage]:
        rows = await self._db.fetchall(
            "SELECT user_id, count(*) AS q, coalesce(sum(prompt_tokens + completion_tokens), 0) AS t"
            " FROM exchanges WHERE asked_at >= ? AND answer IS NOT NULL"
            " GROUP BY user_id ORDER BY q DESC, t DESC, user_id LIMIT ?",
            (since, limit),
        )
        return [UserUsage(r["user_id"], int(r["q"]), int(r["t"])) for r in rows]
