"""An app's access token, as WeCom's gettoken and DingTalk's oauth2/accessToken hand it out.

One per API client. Every call shares the token; when it is missing or due, one caller fetches it and the others
wait for that fetch. A token is due five minutes before it expires (halfway, for one valid ten minutes or less),
and dropped when the vendor calls it invalid. A configuration refusal (a wrong secret, an untrusted IP) is
remembered for a cooldown and raised again without asking the vendor, which spares it (and our IP) a stream of
calls that cannot succeed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

EARLY = 300.0  # seconds before expiry a token is fetched again


class AccessToken:
    def __init__(self, clock: Callable[[], float], cooldown: float) -> None:
        self._clock = clock
        self._cooldown = cooldown  # seconds a configuration refusal is raised again without asking
        self._lock = asyncio.Lock()
        self.value: str | None = None
        self._expires_at = self._due_at = 0.0
        self._refusal: Callable[[], Exception] | None = None
        self._refused_until = 0.0

    async def get(self, fetch: Callable[[], Awaitable[tuple[str, float]]]) -> str:
        """The live token, else the one `fetch()` returns (with its lifetime in seconds), fetched by one caller."""
        if self.value is not None and self._clock() < self._due_at:
            return self.value
        async with self._lock:
            if self.value is not None and self._clock() < self._due_at:
                return self.value
            if self._refusal is not None and self._clock() < self._refused_until:
                raise self._refusal()
            token, lifetime = await fetch()
            now = self._clock()
            self.value, self._expires_at = token, now + lifetime
            self._due_at = now + (lifetime - EARLY if lifetime > 2 * EARLY else lifetime / 2)
            self._refusal = None
            return token

    def refused(self, again: Callable[[], Exception]) -> None:
        """The vendor refused the app's credentials: raise `again()` (a fresh exception each time: a re-raised one
        grows its traceback) instead of asking, for the cooldown."""
        self._refusal, self._refused_until = again, self._clock() + self._cooldown

    def forget_refusal(self) -> None:
        """Ask the vendor at the next call (an operator says the cause is fixed)."""
        self._refusal = None

    def drop(self, token: str) -> None:
        """The vendor called `token` invalid: the next call fetches another (unless a newer one is here already)."""
        if self.value == token:
            self.value = None

    def remaining(self) -> float | None:
        """Seconds the token is still valid, or None when there is none."""
        remaining = self._expires_at - self._clock()
        return remaining if self.value is not None and remaining > 0 else None
