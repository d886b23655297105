"""One pace for every call to the model: when the provider says "too many requests" (HTTP 429), all answers wait.

A rate limit is the provider's, not one conversation's: if every lane retried into it on its own, each would fail
again and end in an apology. So a 429 (after the SDK's own bounded retries) holds the pace for everyone until the
provider's `Retry-After` has passed — or, without one, 2 s, doubling with each 429 in a row up to a minute — and
the call that met it waits and tries again. A call gives up (the user gets the usual apology) only when its waits
would pass `budget` seconds in all. Callers may pass `waiting`, told how long a call is about to wait, so the user
hears that their answer is queued instead of nothing.

Quota exhausted (`insufficient_quota`) is not a rate limit: waiting seconds does not help, so it fails at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from chatgpt_wecom.daemon.model.base import RateLimitedError

log = logging.getLogger(__name__)

T = TypeVar("T")
Waiting = Callable[[float], Awaitable[None]]  # told the seconds a call is about to wait for the provider


class ProviderPace:
    def __init__(
        self,
        *,
        first: float = 2.0,
        cap: float = 60.0,
        budget: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._first, self._cap, self.budget = first, cap, budget
        self._clock = clock
        self._until = 0.0  # clock time until which every call waits
        self._streak = 0  # 429s in a row (without a success between them)

    def blocked_for(self) -> float:
        """Seconds until calls may go again (0: now)."""
        return max(0.0, self._until - self._clock())

    def hold(self, retry_after: float | None) -> float:
        """A call met a 429: hold every call for the provider's `retry_after` (else a growing pause). Returns the
        seconds from now until calls go again."""
        self._streak += 1
        pause = retry_after if retry_after is not None else self._first * 2 ** (self._streak - 1)
        pause = min(max(pause, 0.0), self._cap)
        was_open = self.blocked_for() == 0
        self._until = max(self._until, self._clock() + pause)
        if was_open:
            log.warning("model: the provider is rate limiting (HTTP 429); every answer waits %.1f s%s", pause,
                        " (its Retry-After)" if retry_after is not None else "")  # fmt: skip
        return self.blocked_for()

    def ok(self) -> None:
        self._streak = 0

    async def run(self, call: Callable[[], Awaitable[T]], waiting: Waiting | None = None) -> T:
        """`call()` once the pace allows; after a 429, wait and call again — until the waits would pass `budget`,
        then the 429's error is raised."""
        waited = 0.0
        while True:
            if (pause := self.blocked_for()) > 0:
                if waiting is not None:
                    await waiting(pause)
                await asyncio.sleep(pause)
                waited += pause
                continue
            try:
                result = await call()
            except RateLimitedError as exc:
                pause = self.hold(exc.retry_after)
                if waited + pause > self.budget:
                    raise
                continue
            self.ok()
            return result
