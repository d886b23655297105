"""The Live log's data: one row per incoming message, updated as its events arrive; bounded, no textual here.

Events are folded into rows keyed by `inbox_id` (received → answering → answered → sent → done, or failed).
`ingest()` says which rows changed and which were evicted, so the screen can update only those.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from chatgpt_wecom.protocol import Event, Exchange
from chatgpt_wecom.tui.formats import duration

LIMIT = 500  # rows kept; older ones are evicted


FEEDBACK_MARKS = {"good": " 👍", "bad": " 👎"}  # a user's verdict on an answer, as a row shows it


@dataclass(slots=True)
class LiveRow:
    """What is known about one message so far."""

    inbox_id: int
    user: str
    at: float
    channel: str = ""  # the channel it came in on ("" until message.received is seen)
    chat: str = ""  # the user's own id for a private chat, else a group's id
    question: str = ""
    msg_type: str = "text"
    source: str | None = None
    mode: str = ""
    answer: str | None = None  # what the user got (censored)
    censored: bool = False  # words were masked in it (🚫)
    latency: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    parts: int = 0
    sent: int = 0
    state: str = "received"
    error: str | None = None
    feedback: str | None = None  # the user's verdict on the answer: "good" | "bad" (None: none, or taken back)


@dataclass(slots=True)
class Changes:
    """Rows touched by one batch (in first-touch order) and rows evicted from the log."""

    touched: list[int] = field(default_factory=list)
    evicted: list[int] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.touched or self.evicted)


class LiveLog:
    """The last `limit` messages, newest last."""

    def __init__(self, limit: int = LIMIT) -> None:
        self.limit = limit
        self.rows: OrderedDict[int, LiveRow] = OrderedDict()
        self._evicted_upto = 0  # inbox ids at or below this were evicted; late events for them are ignored

    def __len__(self) -> int:
        return len(self.rows)

    def clear(self) -> None:
        """Forget every row (later events for them are ignored)."""
        if self.rows:
            self._evicted_upto = max(self._evicted_upto, *self.rows)
        self.rows.clear()

    def ingest(self, events: Iterable[Event]) -> Changes:
        """Fold `events` into the rows."""
        changes = Changes()
        seen: set[int] = set()
        for event in events:
            inbox_id = event.data.get("inbox_id")
            if not isinstance(inbox_id, int):
                continue
            row = self._row(inbox_id, event)
            if row is None:
                continue
            _apply(row, event.kind, event.data)
            if inbox_id not in seen:
                seen.add(inbox_id)
                changes.touched.append(inbox_id)
        self._evict(changes, seen)
        return changes

    def settle(self, exchanges: Iterable[Exchange]) -> Changes:
        """Fold in stored exchanges (oldest first) whose events could not be replayed — e.g. answers a daemon
        finished while it was stopping: a row still waiting gets its answer (or error), and a message never seen
        gets a row ("from" is then the exchange's namespace: the stored exchange does not name its channel)."""
        changes = Changes()
        for x in exchanges:
            if x.inbox_id is None:
                continue
            row = self.rows.get(x.inbox_id)
            if row is None:
                if x.inbox_id <= self._evicted_upto:
                    continue
                row = LiveRow(x.inbox_id, x.user_id, x.asked_at, x.namespace, x.chat, x.question, mode=x.mode)
                self.rows[x.inbox_id] = row
            elif row.state not in ("received", "answering") or row.answer is not None:
                continue  # its events told more than the exchange can
            row.mode = row.mode or x.mode
            row.prompt_tokens, row.completion_tokens = x.prompt_tokens, x.completion_tokens
            if x.answer is not None:
                row.answer, row.state = x.answer, "answered"
                row.latency = x.answered_at - x.asked_at if x.answered_at is not None else None
            else:
                row.error, row.state = x.error, "error"
            if x.inbox_id not in changes.touched:
                changes.touched.append(x.inbox_id)
        self._evict(changes, set(changes.touched))
        return changes

    def _evict(self, changes: Changes, seen: set[int]) -> None:
        while len(self.rows) > self.limit:
            old, _ = self.rows.popitem(last=False)
            self._evicted_upto = max(self._evicted_upto, old)
            changes.evicted.append(old)
            if old in seen:
                seen.discard(old)
                changes.touched.remove(old)

    def _row(self, inbox_id: int, event: Event) -> LiveRow | None:
        row = self.rows.get(inbox_id)
        if row is None:
            if event.kind == "feedback":  # a verdict on an answer this log never showed: nothing to mark
                return None
            if event.kind != "message.received" and inbox_id <= self._evicted_upto:
                return None
            row = LiveRow(inbox_id=inbox_id, user=str(event.data.get("user", "")), at=event.at)
            self.rows[inbox_id] = row
        return row


def _apply(row: LiveRow, kind: str, data: dict[str, Any]) -> None:
    if kind == "message.received":
        row.question = str(data.get("text", ""))
        row.msg_type = str(data.get("msg_type", "text"))
        row.source = data.get("source")
        row.channel = str(data.get("channel", ""))
        row.chat = str(data.get("chat", ""))
    elif kind == "answer.started":
        row.mode = str(data.get("mode", ""))
        row.state = "answering"
    elif kind == "answer.finished":
        row.latency = _number(data.get("latency"))
        row.prompt_tokens = _int(data.get("prompt_tokens"))
        row.completion_tokens = _int(data.get("completion_tokens"))
    elif kind == "reply.stored":
        row.answer = str(data.get("text", ""))
        row.censored = data.get("censored") is True
        row.parts = _int(data.get("parts")) or 0
        row.state = "answered"
    elif kind == "delivery.sent":
        row.sent += _int(data.get("parts")) or 1  # queued parts of one answer may go out as one message
        if row.state != "failed":
            row.state = "sent" if row.sent >= row.parts else f"sent {row.sent}/{row.parts}"
    elif kind == "delivery.waiting":  # paced, not failed: WeCom drops what exceeds its per-member rate
        if row.state != "failed":
            row.state = f"waiting {duration(_number(data.get('seconds')) or 0)}"
    elif kind == "delivery.failed":
        row.error = str(data.get("error", ""))
        row.state = "failed" if data.get("final") else "retrying"
    elif kind == "message.done":
        if row.state != "failed":
            row.state = "done"
    elif kind == "error":
        row.error = str(data.get("error", ""))
        row.state = "error"
    elif kind == "feedback":
        rating = data.get("rating")
        row.feedback = rating if rating in ("good", "bad") else None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, int) else None
