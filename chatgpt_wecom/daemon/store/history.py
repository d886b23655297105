"""Read-side queries over stored exchanges for the control API: recent conversations, a user's history,
today's counts, per-user usage."""

from __future__ import annotations

from dataclasses import dataclass

from chatgpt_wecom.daemon.store.db import Database, Row


@dataclass(frozen=True, slots=True)
class StoredExchange:
    id: int
    user_id: str
    mode: str
    question: str
    answer: str | None
    error: str | None
    model: str | None
    prompt_tokens: int
    completion_tokens: int
    asked_at: float
    answered_at: float | None
    namespace: str
    chat: str
    feedback: str | None = None  # the user's standing verdict on the answer: good | bad
    inbox_id: int | None = None  # the message it answers

    @classmethod
    def from_row(cls, r: Row) -> StoredExchange:
        return cls(
            r["id"], r["user_id"], r["mode"], r["question"], r["answer"], r["error"], r["model"],
            r["prompt_tokens"], r["completion_tokens"], r["asked_at"], r["answered_at"], r["namespace"], r["chat"],
            r["feedback"], r["inbox_id"],
        )  # fmt: skip


_COLUMNS = (
    "id, user_id, mode, question, answer, error, model, prompt_tokens, completion_tokens, asked_at, answered_at,"
    " namespace, chat, inbox_id, (SELECT f.rating FROM feedback f WHERE f.inbox_id = exchanges.inbox_id"
    " AND f.rating != 'cancelled') AS feedback"
)


class HistoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, user: str | None, limit: int, before: int | None) -> list[StoredExchange]:
        """Exchanges newest first (optionally of one user), older than id `before`."""
        where: list[str] = ["id < ?"]
        params: list[object] = [before or 2**62]
        if user:
            where.append("user_id = ? COLLATE NOCASE")
            params.append(user)
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM exchanges WHERE {' AND '.join(where)} ORDER BY id DESC LIMIT ?",  # noqa: S608
            [*params, limit],
        )
        return [StoredExchange.from_row(r) for r in rows]

    async def of_user(self, user: str, limit: int = 10_000) -> list[StoredExchange]:
        """A user's history, oldest first."""
        rows = await self._db.fetchall(
            f"SELECT {_COLUMNS} FROM exchanges WHERE user_id = ? COLLATE NOCASE ORDER BY id LIMIT ?",  # noqa: S608
            (user, limit),
        )
        return [StoredExchange.from_row(r) for r in rows]

    async def today(self, since: float) -> tuple[int, int, int]:
        """(users, questions, messages) since `since`: distinct askers, exchanges, inbox messages."""
        ex = await self._db.fetchone(
            "SELECT count(DISTINCT user_id), count(*) FROM exchanges WHERE asked_at >= ?", (since,)
        )
        inbox = await self._db.fetchone("SELECT count(*) FROM inbox WHERE received_at >= ?", (since,))
        users, questions = (int(ex[0]), int(ex[1])) if ex else (0, 0)
        return users, questions, int(inbox[0]) if inbox else 0

    async def user_activity(self, day: str, since_month: float) -> list[tuple[str, int, int, int]]:
        """(user, used today, questions this month, tokens this month) for every user active this month."""
        rows = await self._db.fetchall(
            "SELECT u.user_id, coalesce(q.used, 0),"
            " (SELECT count(*) FROM exchanges e WHERE e.user_id = u.user_id AND e.asked_at >= ?"
            "  AND e.answer IS NOT NULL),"
            " (SELECT coalesce(sum(prompt_tokens + completion_tokens), 0) FROM exchanges e"
            "  WHERE e.user_id = u.user_id AND e.asked_at >= ?)"
            " FROM (SELECT DISTINCT user_id FROM exchanges WHERE asked_at >= ?"
            "       UNION SELECT user_id FROM quota_counts WHERE day = ?) u"
            " LEFT JOIN (SELECT user_id, sum(used) AS used FROM quota_counts WHERE day = ? GROUP BY user_id) q"
            "   ON q.user_id = u.user_id"
            " ORDER BY 2 DESC, 3 DESC, u.user_id",
            (since_month, since_month, since_month, day, day),
        )
        return [(r[0], int(r[1]), int(r[2]), int(r[3])) for r in rows]
