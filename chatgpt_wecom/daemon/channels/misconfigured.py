"""A channel's configuration error (a wrong secret, an untrusted server IP), told to the operator once and then
again every few minutes with how often it recurred.

Every part of every answer meets the same wrong setting until the operator fixes it; reporting each one would
bury the log and the event bus. (Backing off from the vendor is the channel's own business: see `RetryPolicy`.)
"""

from __future__ import annotations

import logging
import time

from chatgpt_wecom.daemon.events import EventBus

log = logging.getLogger(__name__)

REPEAT = 300.0  # seconds: a configuration error already reported is reported again at most this often


class MisconfigurationReports:
    """Called by channels as `misconfigured(what, message, hint)`; `what` names the source and code: "wecom 60020"."""

    def __init__(self, bus: EventBus, repeat: float = REPEAT) -> None:
        self._bus = bus
        self._repeat = repeat
        self._reported: dict[str, tuple[float, int]] = {}  # what -> (when reported, times since)

    def __call__(self, what: str, message: str, hint: str) -> None:
        now = time.monotonic()
        reported, since = self._reported.get(what, (None, 0))
        if reported is not None and now - reported < self._repeat:
            self._reported[what] = (reported, since + 1)
            return
        again = f" (it recurred {since} more times in the last {now - reported:.0f} s)" if reported and since else ""
        log.error("%s — %s%s", message, hint, again)
        source, _, code = what.partition(" ")
        self._bus.publish("error", source=source, errcode=int(code) if code.lstrip("-").isdigit() else None,
                          error=message + again, hint=hint)  # fmt: skip
        self._reported[what] = (now, 0)
