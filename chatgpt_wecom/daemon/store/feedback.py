"""Users' verdicts on answers (the AI bot's 👍/👎): the latest per answer, linked to the message it answered."""

from __future__ import annotations

import json
from dataclasses import dataclass

from chatgpt_wecom.daemon.store.db import Database


@dataclass(frozen=True, slots=True)
class Verdict:
    channel: str
    answer_id: str
    inbox_id: int | None
    namespace: str
    user_id: str
    rating: str  # good | bad | cancelled
    comment: str
    reasons: tuple[int, ...]
    at: float


class FeedbackStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def record(self, verdict: Verdict) -> int | None:
        """Store `verdict` (replacing an earlier one on the same answer); the answered message's inbox id, if it
        is still stored."""
        async with self._db.tx() as conn:
            cur = await conn.execute(
                "SELECT id FROM inbox WHERE dedupe_key = ?", (f"{verdict.channel}:{verdict.answer_id}",)
            )
            found = await cur.fetchone()
            inbox_id = int(found[0]) if found else verdict.inbox_id
            await conn.execute(
                "INSERT INTO feedback (channel, answer_id, inbox_id, namespace, user_id, rating, comment, reasons, at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (channel, answer_id) DO UPDATE SET"
                " rating = excluded.rating, comment = excluded.comment, reasons = excluded.reasons, at = excluded.at",
                (verdict.channel, verdict.answer_id, inbox_id, verdict.namespace, verdict.user_id, verdict.rating,
                 verdict.comment, json.dumps(list(verdict.reasons)), verdict.at),
            )  # fmt: skip
        return inbox_id

    async def counts(self) -> dict[str, int]:
        """How many answers have each standing verdict ("good", "bad"; taken-back ones are not counted)."""
        rows = await self._db.fetchall(
            "SELECT rating, COUNT(*) FROM feedback WHERE rating != 'cancelled' GROUP BY rating"
        )
        counts = {"good": 0, "bad": 0}
        counts.update({str(r[0]): int(r[1]) for r in rows})
        return counts

    async def for_messages(self, inbox_ids: list[int]) -> dict[int, str]:
        """The standing verdict on the answers to these messages (good | bad), by inbox id."""
        if not inbox_ids:
            return {}
        marks = ",".join("?" * len(inbox_ids))
        rows = await self._db.fetchall(
            f"SELECT inbox_id, rating FROM feedback WHERE inbox_id IN ({marks}) AND rating != 'cancelled'",  # noqa: S608
            tuple(inbox_ids),
        )
        return {int(r[0]): str(r[1]) for r in rows}
