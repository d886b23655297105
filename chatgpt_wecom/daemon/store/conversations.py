"""Questions and answers (`exchanges`) and each user's chat state (`users`).

An exchange with `in_context = 1` belongs to the user's running 串聊 conversation; clearing a context only flips
that flag, so the history (and usage) stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database


@dataclass(frozen=True, slots=True)
class UserState:
    mode: str | None
    last_active_at: float | None


@dataclass(frozen=True, slots=True)
class Exchange:
    user_id: str
    mode: str
    question: str
    answer: str | None
    asked_at: float
    answered_at: float | None = None
    system_prompt: str | None = None
    model: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0
    error: str | None = None
    in_context: bool = False


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def user_state(self, user_id: str) -> UserState:
        row = await self._db.fetchone("SELECT mode, last_active_at FROM users WHERE user_id = ?", (user_id,))
        return UserState(row["mode"], row["last_active_at"]) if row else UserState(None, None)

    async def context(self, user_id: str, limit: int = 100) -> list[tuple[str, str]]:
        """The running conversation as (question, answer) pairs, oldest first."""
        rows = await self._db.fetchall(
            "SELECT question, answer FROM (SELECT id, question, answer FROM exchanges"
            " WHERE user_id = ? AND in_context = 1 AND answer IS NOT NULL ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",
            (user_id, limit),
        )
        return [(r["question"], r["answer"]) for r in rows]

    async def context_system_prompt(self, user_id: str) -> str | None:
        """The system prompt the running conversation was given by its latest template, if any."""
        row = await self._db.fetchone(
            "SELECT system_prompt FROM exchanges WHERE user_id = ? AND in_context = 1 AND system_prompt IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            (user_id,),
        )
        return row["system_prompt"] if row else None

    async def has_exchange(self, inbox_id: int) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM exchanges WHERE inbox_id = ?", (inbox_id,))
        return row is not None

    @staticmethod
    async def add_exchange(conn: aiosqlite.Connection, inbox_id: int, ex: Exchange) -> None:
        await conn.execute(
            "INSERT INTO exchanges (inbox_id, user_id, mode, question, answer, system_prompt, model,"
            " prompt_tokens, completion_tokens, error, in_context, asked_at, answered_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (inbox_id) DO NOTHING",
            (
                inbox_id, ex.user_id, ex.mode, ex.question, ex.answer, ex.system_prompt, ex.model,
                ex.prompt_tokens, ex.completion_tokens, ex.error, int(ex.in_context), ex.asked_at,
                ex.answered_at,
            ),
        )  # fmt: skip

    @staticmethod
    async def clear_context(conn: aiosqlite.Connection, user_id: str) -> None:
        await conn.execute("UPDATE exchanges SET in_context = 0 WHERE user_id = ? AND in_context = 1", (user_id,))

    async def pending_image(self, user_id: str, since: float) -> str | None:
        """The path of the image `user_id` sent after `since` and has not asked about yet."""
        row = await self._db.fetchone(
            "SELECT pending_image FROM users WHERE user_id = ? AND pending_image_at >= ?", (user_id, since)
        )
        return row["pending_image"] if row else None

    @staticmethod
    async def set_pending_image(conn: aiosqlite.Connection, user_id: str, path: str | None, at: float) -> None:
        """Keep the picture at `path` for `user_id`'s next question (None: it was asked about)."""
        await conn.execute(
            "INSERT INTO users (user_id, pending_image, pending_image_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET pending_image = excluded.pending_image,"
            " pending_image_at = excluded.pending_image_at",
            (user_id, path, at),
        )

    @staticmethod
    async def save_user(conn: aiosqlite.Connection, user_id: str, mode: str | None, active_at: float) -> None:
        await conn.execute(
            "INSERT INTO users (user_id, mode, last_active_at) VALUES (?, ?, ?)"
            " ON CONFLICT (user_id) DO UPDATE SET mode = excluded.mode, last_active_at = excluded.last_active_at",
            (user_id, mode, active_at),
        )
