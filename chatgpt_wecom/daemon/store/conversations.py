"""Questions and answers (`exchanges`) and each conversation's state (`conversations`).

A conversation is one person — `(namespace, user_id)` — in one chat (a private chat is the user's own id; a group
is its id): the 串聊 mode, its context and a picture kept for the next question belong to it, so a person's DM and
each of their groups are separate. An exchange with `in_context = 1` belongs to its conversation's running 串聊
context; clearing a context only flips that flag, so the history (and usage) stays.
"""

from __future__ import annotations

from dataclasses import dataclass

import aiosqlite

from chatgpt_wecom.daemon.store.db import Database


@dataclass(frozen=True, slots=True)
class ChatKey:
    """One person's conversation in one chat."""

    namespace: str
    user_id: str
    chat: str  # the user's id for a private chat

    @property
    def sql(self) -> tuple[str, str, str]:
        return (self.namespace, self.user_id, self.chat)


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
    namespace: str = "wecom"
    chat: str = ""  # "" is the private chat (stored as the user's id)


class ConversationStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def user_state(self, key: ChatKey) -> UserState:
        row = await self._db.fetchone(
            "SELECT mode, last_active_at FROM conversations WHERE namespace = ? AND user_id = ? AND chat = ?", key.sql
        )
        return UserState(row["mode"], row["last_active_at"]) if row else UserState(None, None)

    async def context(self, key: ChatKey, limit: int = 100) -> list[tuple[str, str]]:
        """The running conversation as (question, answer) pairs, oldest first."""
        rows = await self._db.fetchall(
            "SELECT question, answer FROM (SELECT id, question, answer FROM exchanges"
            " WHERE namespace = ? AND user_id = ? AND chat = ? AND in_context = 1 AND answer IS NOT NULL"
            " ORDER BY id DESC LIMIT ?)"
            " ORDER BY id",
            (*key.sql, limit),
        )
        return [(r["question"], r["answer"]) for r in rows]

    async def context_system_prompt(self, key: ChatKey) -> str | None:
        """The system prompt the running conversation was given by its latest template, if any."""
        row = await self._db.fetchone(
            "SELECT system_prompt FROM exchanges WHERE namespace = ? AND user_id = ? AND chat = ?"
            " AND in_context = 1 AND system_prompt IS NOT NULL"
            " ORDER BY id DESC LIMIT 1",
            key.sql,
        )
        return row["system_prompt"] if row else None

    async def has_exchange(self, inbox_id: int) -> bool:
        row = await self._db.fetchone("SELECT 1 FROM exchanges WHERE inbox_id = ?", (inbox_id,))
        return row is not None

    @staticmethod
    async def add_exchange(conn: aiosqlite.Connection, inbox_id: int, ex: Exchange) -> None:
        await conn.execute(
            "INSERT INTO exchanges (inbox_id, user_id, mode, question, answer, system_prompt, model,"
            " prompt_tokens, completion_tokens, error, in_context, asked_at, answered_at, namespace, chat)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (inbox_id) DO NOTHING",
            (
                inbox_id, ex.user_id, ex.mode, ex.question, ex.answer, ex.system_prompt, ex.model,
                ex.prompt_tokens, ex.completion_tokens, ex.error, int(ex.in_context), ex.asked_at,
                ex.answered_at, ex.namespace, ex.chat or ex.user_id,
            ),
        )  # fmt: skip

    @staticmethod
    async def clear_context(conn: aiosqlite.Connection, user_id: str, key: ChatKey | None = None) -> None:
        """End the running 串聊 context of one conversation (`key`), or — an operator's reset — every context of
        `user_id` (a plain id: in any namespace and chat)."""
        if key is not None:
            await conn.execute(
                "UPDATE exchanges SET in_context = 0"
                " WHERE namespace = ? AND user_id = ? AND chat = ? AND in_context = 1",
                key.sql,
            )
        else:
            await conn.execute("UPDATE exchanges SET in_context = 0 WHERE user_id = ? AND in_context = 1", (user_id,))

    async def pending_image(self, key: ChatKey, since: float) -> str | None:
        """The path of the image sent in this conversation after `since` and not asked about yet."""
        row = await self._db.fetchone(
            "SELECT pending_image FROM conversations"
            " WHERE namespace = ? AND user_id = ? AND chat = ? AND pending_image_at >= ?",
            (*key.sql, since),
        )
        return row["pending_image"] if row else None

    @staticmethod
    async def set_pending_image(conn: aiosqlite.Connection, key: ChatKey, path: str | None, at: float) -> None:
        """Keep the picture at `path` for the conversation's next question (None: it was asked about)."""
        await conn.execute(
            "INSERT INTO conversations (namespace, user_id, chat, pending_image, pending_image_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (namespace, user_id, chat) DO UPDATE"
            " SET pending_image = excluded.pending_image, pending_image_at = excluded.pending_image_at",
            (*key.sql, path, at),
        )

    @staticmethod
    async def save_user(
        conn: aiosqlite.Connection, key: ChatKey, mode: str | None, active_at: float, inbox_id: int
    ) -> None:
        """The conversation's mode, when it was last active, and its latest message (`inbox_id`, just answered)."""
        await conn.execute(
            "INSERT INTO conversations (namespace, user_id, chat, mode, last_active_at, last_inbox_id)"
            " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (namespace, user_id, chat) DO UPDATE"
            " SET mode = excluded.mode, last_active_at = excluded.last_active_at,"
            " last_inbox_id = max(coalesce(last_inbox_id, 0), excluded.last_inbox_id)",
            (*key.sql, mode, active_at, inbox_id),
        )

    @staticmethod
    async def saw(conn: aiosqlite.Connection, key: ChatKey, inbox_id: int) -> None:
        """The conversation's latest message is `inbox_id` (closed without an answer), its mode left as it is."""
        await conn.execute(
            "INSERT INTO conversations (namespace, user_id, chat, last_inbox_id) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (namespace, user_id, chat) DO UPDATE"
            " SET last_inbox_id = max(coalesce(last_inbox_id, 0), excluded.last_inbox_id)",
            (*key.sql, inbox_id),
        )
