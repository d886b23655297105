"""How hard a channel's HTTP client tries a call: attempts, backoff with jitter, timeout, config-error cool-down."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try. ``attempts`` counts every try of a transient failure, the first included."""

    attempts: int = 3
    base_delay: float = 0.5
    max_delay: float = 8.0
    timeout: float = 10.0  # total seconds for one HTTP request, media transfers included
    config_error_cooldown: float = 300.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")

    def delay(self, retry: int) -> float:
        """Seconds to wait before retry number ``retry`` (1, 2, …): exponential, capped, with jitter."""
        ceiling = min(self.max_delay, self.base_delay * 2.0 ** (retry - 1))
        return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not cryptography


@dataclass(frozen=True)
class ConnectionPolicy:
    """How a connection channel (a WebSocket the daemon dials out on) keeps its connection: heartbeat, dead
    connection detection, reconnect backoff. Production defaults; tests shrink them."""

    heartbeat: float = 30.0  # seconds between the channel's own pings
    missed_pongs: int = 2  # pings unanswered in a row before the connection counts as dead
    idle_timeout: float = 90.0  # no frame at all for this long: dead (a channel whose server pings)
    ack_timeout: float = 5.0  # seconds to wait for the server to acknowledge one frame
    first_backoff: float = 1.0  # seconds before the first reconnect; doubling with ±20 % jitter …
    max_backoff: float = 30.0  # … up to this
    frame_interval: float = 0.7  # at least this long between two updates of one message growing in place

    def backoff(self, failures: int) -> float:
        """Seconds to wait before reconnect number `failures` (1, 2, …): exponential, capped, ±20 % jitter."""
        ceiling = min(self.max_backoff, self.first_backoff * 2.0 ** (failures - 1))
        return ceiling * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography
