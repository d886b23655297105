"""How the tests wait: on a fake's own condition, with a periodic re-check (`until`), or, where nothing notifies, by
polling at a short interval (`wait_until`); never a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any, Final

RECHECK: Final = 0.05  # seconds between re-checks of a predicate when the fake's condition is not notified


async def until(changed: asyncio.Condition, predicate: Callable[[], object], timeout: float) -> None:
    """Return as soon as `predicate()` holds: checked whenever `changed` is notified (the fake received or answered
    something) and every RECHECK seconds besides, for predicates about state outside the fake (log records, the
    daemon's database). TimeoutError when `timeout` passes first."""
    async with changed, asyncio.timeout(timeout):
        while not predicate():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(RECHECK):
                    await changed.wait()


async def wait_until(predicate: Any, timeout: float = 10.0, what: str = "condition") -> None:
    """Poll `predicate()` (sync) until true; the interval is short and the deadline is the only limit."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
