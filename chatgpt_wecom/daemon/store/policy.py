"""The live policy in SQLite: the four user lists and the sensitive words, every change audited.

config.yml seeds it. At each start (and on SIGHUP) `apply_config` compares the file's lists with what the file
said when it was last applied: a list the file changed is applied from the file (and audited as "config.yml");
an unchanged one leaves the stored value — with its live edits — alone. So a file edit is never silently
ignored, and a live edit is never silently undone.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import aiosqlite

from chatgpt_wecom.daemon.chat.policy import LIST_NAMES, AccessLists
from chatgpt_wecom.daemon.store.audit import audit
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.protocol import ListName

CONFIG_ACTOR = "config.yml"
SEED_KEYS: dict[str, ListName | None] = {
    "allow_users": "allow",
    "deny_users": "deny",
    "vip_users": "vip",
    "admin_users": "admin",
    "sensitive_words": None,
}


@dataclass(frozen=True, slots=True)
class PolicySnapshot:
    lists: AccessLists
    words: tuple[str, ...]


def _clean(values: Iterable[str]) -> list[str]:
    seen: dict[str, str] = {}
    for raw in values:
        value = raw.strip()
        if value and value.casefold() not in seen:
            seen[value.casefold()] = value
    return sorted(seen.values(), key=str.casefold)


class PolicyStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def snapshot(self) -> PolicySnapshot:
        rows = await self._db.fetchall("SELECT list, user_id FROM policy_users ORDER BY user_id COLLATE NOCASE")
        members: dict[str, set[str]] = {name: set() for name in LIST_NAMES}
        for row in rows:
            members[row["list"]].add(row["user_id"])
        words = await self._db.fetchall("SELECT word FROM sensitive_words ORDER BY word COLLATE NOCASE")
        lists = AccessLists(**{name: frozenset(m) for name, m in members.items()})
        return PolicySnapshot(lists, tuple(r["word"] for r in words))

    # --- changes (each in one transaction, with its audit entry) -------------------------------------
    async def add_users(self, name: ListName, users: Sequence[str], actor: str) -> list[str]:
        """Add to a list; returns the users that were not already on it."""
        return await self._change_users(name, _clean(users), actor, add=True)

    async def remove_users(self, name: ListName, users: Sequence[str], actor: str) -> list[str]:
        """Remove from a list; returns the users that were on it."""
        return await self._change_users(name, _clean(users), actor, add=False)

    async def _change_users(self, name: ListName, users: list[str], actor: str, *, add: bool) -> list[str]:
        async with self._db.tx() as conn:
            before = await _members(conn, name)
            stored = {u.casefold(): u for u in before}
            changed = [u for u in users if (u.casefold() in stored) != add]
            if not changed:
                return []
            if add:
                sql = "INSERT INTO policy_users (list, user_id) VALUES (?, ?) ON CONFLICT DO NOTHING"
                rows = [(name, u) for u in changed]
            else:  # delete the stored spelling: SQLite's NOCASE folds ASCII only
                sql = "DELETE FROM policy_users WHERE list = ? AND user_id = ?"
                rows = [(name, stored[u.casefold()]) for u in changed]
            await conn.executemany(sql, rows)
            after = await _members(conn, name)
            action = f"{'add' if add else 'remove'}_{name}"
            await audit(conn, actor, action, ",".join(changed), before, after)
        return changed

    async def add_words(self, words: Sequence[str], actor: str) -> list[str]:
        return await self._change_words(_clean(words), actor, add=True)

    async def remove_words(self, words: Sequence[str], actor: str) -> list[str]:
        return await self._change_words(_clean(words), actor, add=False)

    async def _change_words(self, words: list[str], actor: str, *, add: bool) -> list[str]:
        async with self._db.tx() as conn:
            before = await _words(conn)
            stored = {w.casefold(): w for w in before}
            changed = [w for w in words if (w.casefold() in stored) != add]
            if not changed:
                return []
            if add:
                sql, rows = "INSERT INTO sensitive_words (word) VALUES (?) ON CONFLICT DO NOTHING", changed
            else:  # delete the stored spelling: SQLite's NOCASE folds ASCII only
                sql, rows = "DELETE FROM sensitive_words WHERE word = ?", [stored[w.casefold()] for w in changed]
            await conn.executemany(sql, [(w,) for w in rows])
            # The words themselves are the audit target; before/after keep only the counts.
            await audit(conn, actor, "add_words" if add else "remove_words", ",".join(changed), len(before),
                        len(before) + (len(changed) if add else -len(changed)))  # fmt: skip
        return changed

    # --- seeding from config.yml ---------------------------------------------------------------------
    async def apply_config(self, file_values: dict[str, list[str]]) -> list[str]:
        """Apply each list whose value in config.yml changed since it was last applied; returns their keys."""
        applied: list[str] = []
        async with self._db.tx() as conn:
            cur = await conn.execute("SELECT key, value FROM policy_seed")
            seeded = {k: json.loads(v) for k, v in await cur.fetchall()}
            for key, name in SEED_KEYS.items():
                value = _clean(file_values.get(key, []))
                if seeded.get(key) == value:
                    continue
                before = await (_words(conn) if name is None else _members(conn, name))
                if name is None:
                    await conn.execute("DELETE FROM sensitive_words")
                    await conn.executemany("INSERT OR IGNORE INTO sensitive_words (word) VALUES (?)",
                                           [(w,) for w in value])  # fmt: skip
                else:
                    await conn.execute("DELETE FROM policy_users WHERE list = ?", (name,))
                    await conn.executemany("INSERT OR IGNORE INTO policy_users (list, user_id) VALUES (?, ?)",
                                           [(name, u) for u in value])  # fmt: skip
                await conn.execute(
                    "INSERT INTO policy_seed (key, value) VALUES (?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    (key, json.dumps(value, ensure_ascii=False)),
                )
                if before != value:
                    shown_before, shown_after = (len(before), len(value)) if name is None else (before, value)
                    await audit(conn, CONFIG_ACTOR, f"set_{key}", key, shown_before, shown_after)
                applied.append(key)
        return applied


async def _members(conn: aiosqlite.Connection, name: ListName) -> list[str]:
    cur = await conn.execute("SELECT user_id FROM policy_users WHERE list = ? ORDER BY user_id COLLATE NOCASE", (name,))
    return [r[0] for r in await cur.fetchall()]


async def _words(conn: aiosqlite.Connection) -> list[str]:
    cur = await conn.execute("SELECT word FROM sensitive_words ORDER BY word COLLATE NOCASE")
    return [r[0] for r in await cur.fetchall()]
