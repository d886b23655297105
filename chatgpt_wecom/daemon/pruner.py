"""The daily prune: `retention_days` applied shortly after start and then once a day, and on an operator's request.

The days come from the settings in force at each run (a reload changes them; 0 turns pruning off). One prune runs
at a time; each is logged in one line with its counts (and the store audits one that removed something). What is
pruned and what survives is `store/retention.py`'s to say.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from chatgpt_wecom.daemon.live_settings import LiveSettings
from chatgpt_wecom.daemon.store.retention import Pruned, RetentionStore

log = logging.getLogger(__name__)

SCHEDULED = "retention"  # the audit actor of the daily prune


class Pruner:
    def __init__(
        self,
        store: RetentionStore,
        live: LiveSettings,
        clock: Callable[[], float],
        *,
        first_after: float,
        every: float,
    ) -> None:
        self._store = store
        self._live = live
        self._clock = clock
        self._first_after = first_after
        self._every = every
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def run(self, days: int | None = None, *, dry_run: bool = False, actor: str = SCHEDULED) -> Pruned | None:
        """Prune what is older than `days` (None: retention_days) now; None when retention is off."""
        days = self._live.settings.retention_days if days is None else days
        if not days:
            return None
        async with self._lock:
            started = time.monotonic()
            result = await self._store.prune(self._clock(), days, dry_run=dry_run, actor=actor)
        if not dry_run:
            log.info(
                "retention: pruned %d message(s) received over %d day(s) ago — %d exchange(s), %d reply part(s), "
                "%d draft(s), %d file(s) (%d bytes), %d old tombstone(s) — in %.1f s (%s)",
                result.messages, days, result.exchanges, result.parts, result.drafts, result.files,
                result.file_bytes, result.tombstones, time.monotonic() - started, actor,
            )  # fmt: skip
        return result

    def start(self) -> None:
        """Prune `first_after` seconds from now, then every `every` seconds, until `stop()`."""
        if self._task is None:
            self._task = asyncio.create_task(self._daily(), name="pruner")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _daily(self) -> None:
        delay = self._first_after
        while True:
            await asyncio.sleep(delay)
            delay = self._every
            try:
                await self.run()
            except Exception:
                log.exception("retention: the prune failed; it is tried again in %.0f s", self._every)
