"""The in-process event bus: every step of the pipeline publishes here; the control API and tests subscribe.

Publishing never blocks and never fails: each subscriber has a bounded queue, and a subscriber that falls behind
loses the oldest events and is told how many (`dropped`) with its next one. A slow client can never slow the
daemon. The number of subscribers is capped (`max_subscribers`), so clients that never read cannot add up:
past it, `subscribe` raises `TooManySubscribers`.

Events are numbered (`seq`, from 1, per daemon run: a restarted daemon starts again at 1 under a new `boot` id) and
the last `backlog_size` are kept in a ring, so a client that was away can ask for what it missed (`replay`). The
ring is bounded in count; each event carries at most `PREVIEW` characters of text, so it stays a few MiB at worst.
"""

from __future__ import annotations

import asyncio
import itertools
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

ERROR_KINDS = frozenset({"error", "delivery.failed"})
MAX_SUBSCRIBERS = 32  # live-event clients (each TUI or `ctl events` is one); ~0.2 MiB each when it never reads
BACKLOG = 2000  # events kept for clients that reconnect (`GET /v1/events?since=N`)
PREVIEW = 2000  # characters of a question or answer carried by an event; the history has the rest


ANSWER_PREVIEW = 40_000  # characters of the answer a user got, carried by `reply.stored` (an answer is a few parts)


def preview(text: str, limit: int = PREVIEW) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # message.received, answer.started, answer.finished, delivery.failed, error, …
    data: dict[str, Any]
    seq: int = 0
    at: float = field(default_factory=time.time)
    dropped: int = 0  # events this subscriber lost just before this one


class TooManySubscribers(Exception):
    """The bus has `limit` subscribers already; the message says so and what to do, for the refused client."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"too many live-event clients: the daemon serves at most {limit} at once (TUIs and `ctl events`); "
            "close one and try again"
        )
        self.limit = limit


class Subscription:
    def __init__(self, bus: EventBus, maxsize: int) -> None:
        self._bus = bus
        self._events: deque[Event] = deque()
        self._maxsize = maxsize
        self._dropped = 0
        self._ready = asyncio.Event()

    def _offer(self, event: Event) -> None:
        if len(self._events) >= self._maxsize:
            self._events.popleft()
            self._dropped += 1
        self._events.append(event)
        self._ready.set()

    async def get(self) -> Event:
        while not self._events:
            self._ready.clear()
            await self._ready.wait()
        event = self._events.popleft()
        if self._dropped:
            event = Event(event.kind, event.data, event.seq, event.at, self._dropped)
            self._dropped = 0
        return event

    def close(self) -> None:
        self._bus._subscribers.discard(self)

    def __aiter__(self) -> AsyncIterator[Event]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Event]:
        while True:
            yield await self.get()


class EventBus:
    def __init__(
        self,
        queue_size: int = 1000,
        keep_errors: int = 20,
        max_subscribers: int = MAX_SUBSCRIBERS,
        backlog_size: int = BACKLOG,
    ) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_size = queue_size
        self.max_subscribers = max_subscribers
        self._seq = itertools.count(1)
        self.last_seq = 0  # the newest event's number (0: none yet)
        self.boot = secrets.token_hex(8)  # names this run's numbering: a restarted daemon has another
        self.backlog: deque[Event] = deque(maxlen=backlog_size)
        self.recent_errors: deque[Event] = deque(maxlen=keep_errors)  # for the status page

    def publish(self, kind: str, **data: Any) -> None:
        event = Event(kind, data, next(self._seq))
        self.last_seq = event.seq
        self.backlog.append(event)
        if kind in ERROR_KINDS:
            self.recent_errors.append(event)
        for sub in tuple(self._subscribers):
            sub._offer(event)

    def subscribe(self, queue_size: int | None = None) -> Subscription:
        """A new subscriber's queue; TooManySubscribers when `max_subscribers` are subscribed already."""
        if len(self._subscribers) >= self.max_subscribers:
            raise TooManySubscribers(self.max_subscribers)
        sub = Subscription(self, queue_size or self._queue_size)
        self._subscribers.add(sub)
        return sub

    def replay(self, since: int) -> tuple[list[Event], int]:
        """The kept events numbered after `since`, oldest first, and how many after `since` are no longer kept
        (the ring moved past them). Call it right after `subscribe` (no await between): the two then meet
        exactly, and a live event numbered at or below the last replayed one is a duplicate to skip."""
        kept = [e for e in self.backlog if e.seq > since] if self.backlog and self.backlog[-1].seq > since else []
        oldest = self.backlog[0].seq if self.backlog else self.last_seq + 1
        return kept, max(0, oldest - 1 - since)
