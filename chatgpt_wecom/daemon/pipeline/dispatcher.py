"""Runs inbox messages concurrently across users, in order within each user.

Each user with work has a *lane*: a task that processes that user's messages one after another. Lanes run in
parallel up to `concurrency` at a time. Every task is tracked (strong references) and `stop()` drains them
within a grace period, then cancels what is left — cancelled work stays in the inbox and resumes on restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable

from chatgpt_wecom.daemon.events import EventBus

log = logging.getLogger(__name__)


class Postponed(Exception):
    """Raised by the work function to leave a message, unfinished, for the next start."""


class Dispatcher:
    def __init__(self, process: Callable[[int], Awaitable[None]], bus: EventBus, concurrency: int = 32) -> None:
        self._process = process
        self._bus = bus
        self._slots = asyncio.Semaphore(concurrency)
        self._queues: dict[str, deque[int]] = {}
        self._lanes: set[asyncio.Task[None]] = set()
        self._accepting = True
        self._running = 0

    @property
    def depth(self) -> int:
        """Messages queued or in progress."""
        return sum(len(q) for q in self._queues.values())

    @property
    def in_flight(self) -> int:
        """Messages in progress (each holds a slot): being answered or delivered."""
        return self._running

    def submit(self, user_id: str, inbox_id: int) -> None:
        if not self._accepting:
            return  # stays pending in the inbox; the next start picks it up
        queue = self._queues.get(user_id)
        if queue is not None:
            queue.append(inbox_id)
            return
        self._queues[user_id] = deque([inbox_id])
        lane = asyncio.create_task(self._run_lane(user_id), name=f"lane:{user_id}")
        self._lanes.add(lane)
        lane.add_done_callback(self._lanes.discard)

    async def _run_lane(self, user_id: str) -> None:
        queue = self._queues[user_id]
        try:
            while queue and self._accepting:
                inbox_id = queue[0]
                async with self._slots:
                    if not self._accepting:
                        return  # stopping began while this lane waited for a slot: leave it for the next start
                    self._running += 1
                    try:
                        await self._process(inbox_id)
                    except Postponed:
                        return
                    except Exception as exc:
                        log.exception("pipeline: message %d of %s failed; it stays in the inbox", inbox_id, user_id)
                        self._bus.publish("error", source="pipeline", user=user_id, inbox_id=inbox_id, error=repr(exc))
                    finally:
                        self._running -= 1
                queue.popleft()
        finally:
            del self._queues[user_id]

    async def stop(self, grace: float) -> None:
        """Start no new message; let the ones in progress finish for up to `grace` seconds; cancel the rest."""
        self._accepting = False
        if not self._lanes:
            return
        _, pending = await asyncio.wait(set(self._lanes), timeout=grace)
        for task in pending:
            task.cancel()
        if pending:
            log.warning("shutdown: %d conversation(s) cut short; they resume on the next start", len(pending))
            await asyncio.gather(*pending, return_exceptions=True)
