"""The people the daemon knows, from what it stores: who talked where and their latest message (conversations), who
asked today (exchanges) and who was counted against today's quota. The access lists are the caller's to add.

One query, grouped once, that never walks the inbox: each conversation keeps its latest message's id
(`last_inbox_id`, written with the answer — so someone appears once their first message has been answered, or
refused), and today's questions and counts come from the time and day indexes. A person's name is the one their
latest message carried (DingTalk's `senderNick`, stored as `sender_nick` in the payload); pruned messages keep
none. bench/users.py times it on a large database.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatgpt_wecom.daemon.store.db import Database


@dataclass(frozen=True, slots=True)
class Person:
    namespace: str
    user_id: str
    name: str | None
    channel: str | None  # of their latest message
    last_seen: float | None  # their latest message, or conversation activity
    questions_today: int
    groups: int  # group chats they talked to the bot in


_PEOPLE = """
SELECT p.namespace, p.user_id, i.channel, i.received_at, p.active, p.at, p.asked, p.groups,
       CASE WHEN json_valid(i.payload) THEN json_extract(i.payload, '$.sender_nick') END AS name
FROM (
  SELECT namespace, user_id, max(msg) AS msg, max(active) AS active, max(at) AS at, sum(asked) AS asked,
         sum(groups) AS groups
  FROM (
    SELECT namespace, user_id, max(last_inbox_id) AS msg, max(last_active_at) AS active, NULL AS at, 0 AS asked,
           sum(chat != user_id) AS groups
      FROM conversations GROUP BY namespace, user_id
    UNION ALL
    SELECT namespace, user_id, NULL, NULL, max(asked_at), count(*), 0
      FROM exchanges WHERE asked_at >= ? GROUP BY namespace, user_id
    UNION ALL
    SELECT namespace, user_id, NULL, NULL, NULL, 0, 0 FROM quota_counts WHERE day = ?
  ) GROUP BY namespace, user_id
) p
LEFT JOIN inbox i ON i.id = p.msg
"""


class DirectoryStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def people(self, since: float, day: str) -> list[Person]:
        """Everyone stored, with questions asked since `since` (the local day's start) — `day` is that day."""
        rows = await self._db.fetchall(_PEOPLE, (since, day))
        found: list[Person] = []
        for r in rows:
            seen = [at for at in (r["received_at"], r["active"], r["at"]) if at is not None]
            name = str(r["name"]) if r["name"] not in (None, "") else None
            last_seen = max(seen) if seen else None
            asked, groups = int(r["asked"]), int(r["groups"])
            found.append(Person(r["namespace"], r["user_id"], name, r["channel"], last_seen, asked, groups))
        return found
