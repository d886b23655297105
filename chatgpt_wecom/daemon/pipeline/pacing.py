"""Paces messages to each recipient under a platform's per-recipient limits. Pure: times in, waits out.

A platform that drops what exceeds its limit without an error (WeCom: "每应用对同一个成员不可超过30次/分钟，1000次/
小时，超过部分会被丢弃不下发") must never be sent more than it takes, so every try is counted — a try whose reply
was lost may have arrived and counted there too.

- `Rate(count, seconds)`: at most `count` sends in any `seconds`-long window; a channel names its own rates.
- A sliding window keeps every fixed window the platform may use within the limit as well; `slack` seconds (at
  most a twentieth of the window) are added to each window for the time a request takes to arrive.
- `wait(key)` is how long until the next send to `key` fits every rate (0: now); `record(key)` counts a send.
- `seed(key, at)` loads sends made before a restart (from the outbox), so a restart does not start a burst.
- Keys idle for longer than the longest window are forgotten: memory follows the active recipients.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Rate:
    count: int
    seconds: float

    def __str__(self) -> str:
        return f"{self.count} per {self.seconds:g} s"


class Pacer:
    def __init__(self, rates: Iterable[Rate], *, slack: float = 1.0, clock: Callable[[], float] = time.time) -> None:
        self.rates = tuple(rates)
        self._clock = clock
        self._windows = [(r.count, r.seconds + min(slack, r.seconds / 20)) for r in self.rates]
        self._horizon = max((w for _, w in self._windows), default=0.0)
        self._sends: dict[str, deque[float]] = {}
        self._records = 0

    def seed(self, key: str, at: float) -> None:
        """Count a send made before this process started (call in time order)."""
        self.record(key, at)

    def record(self, key: str, at: float | None = None) -> None:
        if not self.rates:
            return
        self._sends.setdefault(key, deque()).append(self._clock() if at is None else at)
        self._records += 1
        if self._records % 1024 == 0:
            self._forget_idle()

    def _forget_idle(self) -> None:
        cutoff = self._clock() - self._horizon
        for key in [k for k, sends in self._sends.items() if sends[-1] <= cutoff]:
            del self._sends[key]

    def wait(self, key: str) -> float:
        """Seconds until one more send to `key` keeps within every rate; 0 when it may go now."""
        sends = self._sends.get(key)
        if not sends:
            return 0.0
        now = self._clock()
        while sends and sends[0] <= now - self._horizon:
            sends.popleft()
        if not sends:
            del self._sends[key]
            return 0.0
        ready = now
        for count, window in self._windows:
            recent = [t for t in sends if t > now - window]
            if len(recent) >= count:  # the oldest send that must leave the window first
                ready = max(ready, recent[len(recent) - count] + window)
        return ready - now

    @property
    def tracked(self) -> int:
        """Recipients with sends still inside a window."""
        return len(self._sends)
