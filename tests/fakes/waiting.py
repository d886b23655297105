"""How the fakes' `wait_for` waits: on the fake's own condition, with a periodic re-check, never a fixed sleep."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Final

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
