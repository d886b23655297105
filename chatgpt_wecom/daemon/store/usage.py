"""Daily quota counts and usage figures (questions and tokens per person, per day or month).

A person is `(namespace, user_id)`: the WeCom app and AI bot share `wecom`, so a person's quota is one quota
wherever they ask. An operator names people by a plain id (that id in every namespace) or `namespace:id` (one).
"""

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


NAMESPACES = frozenset({"wecom", "dingtalk"})  # the identity namespaces a qualified id may name


def split_person(name: str) -> tuple[str | None, str]:
    """`ns:id` → (ns, id) for a known namespace; anything else is a plain id → (None, name)."""
    namespace, sep, user_id = name.partition(":")
    return (namespace, user_id) if sep and namespace.lower() in NAMESPACES and user_id else (None, name)


def person_filter(name: str | None) -> tuple[str, tuple[str, ...]]:
    """An SQL condition (to append after WHERE …) and its parameters for the people `name` names."""
    if name is None:
        return "", ()
    namespace, user_id = split_person(name)
    if namespace is None:
        return " AND user_id = ?", (user_id,)
    return " AND namespace = ? AND user_id = ?", (namespace.lower(), user_id)


class UsageStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def used(self, user_id: str, day: str, namespace: str = "wecom") -> int:
        """Questions counted against the person's quota on local `day` (YYYY-MM-DD)."""
        row = await self._db.fetchone(
            "SELECT used FROM quota_counts WHERE namespace = ? AND user_id = ? AND day = ?", (namespace, user_id, day)
        )
        return int(row["used"]) if row else 0

    @staticmethod
    async def count(conn: aiosqlite.Connection, user_id: str, day: str, namespace: str = "wecom") -> None:
        """One more question for the person on `day`, inside the caller's transaction."""
        await conn.execute(
            "INSERT INTO quota_counts (namespace, user_id, day, used) VALUES (?, ?, ?, 1)"
            " ON CONFLICT (namespace, user_id, day) DO UPDATE SET used = used + 1",
            (namespace, user_id, day),
        )

    async def reset(self, user_id: str | None, day: str, actor: str) -> int:
        """Give `user_id` (a plain id: in every namespace; `ns:id`: in one; None: everyone) a fresh quota for
        `day`; returns how many counts were cleared."""
        where, params = person_filter(user_id)
        async with self._db.tx() as conn:
            select = f"SELECT coalesce(sum(used), 0) FROM quota_counts WHERE day = ?{where}"  # noqa: S608 - constants
            cur = await conn.execute(select, (day, *params))
            before = (await cur.fetchone() or (0,))[0]
            await conn.execute(f"DELETE FROM quota_counts WHERE day = ?{where}", (day, *params))  # noqa: S608
            await audit(conn, actor, "reset_quota", user_id or "all", {"day": day, "used": before}, {"used": 0})
        return int(before)

    async def usage(self, user_id: str, since: float, namespace: str = "wecom") -> Usage:
        """Questions answered by the model and tokens spent by the person since unix time `since`."""
        row = await self._db.fetchone(
            "SELECT count(*), coalesce(sum(prompt_tokens + completion_tokens), 0) FROM exchanges"
            " WHERE namespace = ? AND user_id = ? AND asked_at >= ? AND answer IS NOT NULL",
            (namespace, user_id, since),
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
