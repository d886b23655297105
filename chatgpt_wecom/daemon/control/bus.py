"""The in-process event bus: every step of the pipeline publishes here; the control API and tests subscribe.

Publishing never blocks and never fails: each subscriber has a bounded queue, and a subscriber that falls behind
loses the oldest events and is told how many (`dropped`) with its next one. A slow client can never slow the
daemon.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

ERROR_KINDS = frozenset({"error", "delivery.failed"})
PREVIEW = 2000  # characters of a question or answer carried by an event; the history has the rest


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW else text[:PREVIEW] + "…"


@dataclass(frozen=True, slots=True)
class Event:
    kind: str  # message.received, answer.started, answer.finished, delivery.failed, error, …
    data: dict[str, Any]
    seq: int = 0
    at: float = field(default_factory=time.time)
    dropped: int = 0  # events this subscriber lost just before this one


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
    def __init__(self, queue_size: int = 1000, keep_errors: int = 20) -> None:
        self._subscribers: set[Subscription] = set()
        self._queue_size = queue_size
        self._seq = itertools.count(1)
        self.recent_errors: deque[Event] = deque(maxlen=keep_errors)  # for the status page

    def publish(self, kind: str, **data: Any) -> None:
        event = Event(kind, data, next(self._seq))
        if kind in ERROR_KINDS:
            self.recent_errors.append(event)
        for sub in tuple(self._subscribers):
            sub._offer(event)

    def subscribe(self, queue_size: int | None = None) -> Subscription:
        sub = Subscription(self, queue_size or self._queue_size)
        self._subscribers.add(sub)
        return sub
