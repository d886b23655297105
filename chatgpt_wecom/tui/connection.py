"""The link to the daemon: owns the one ControlClient, follows the event stream, reconnects by itself.

A worker loops: ask for the status → follow `GET /v1/events` (connected once the daemon accepts the stream) → on
any failure report the link down and retry with capped exponential backoff. A daemon that refuses the stream
(too many live-event clients) leaves the link down with its sentence as the reason, and is asked again later.
It remembers the last event it saw (its `seq`, and the daemon run's `boot` that numbers them) and opens every
stream with `since`, so a reconnect first replays what happened while the link was down: the Live page misses
nothing the daemon still keeps. When the daemon cannot replay all of it — it restarted (a new numbering), or the
link was down for longer than its backlog — the operator is told, and the exchanges answered since the last event
seen are fetched from the history (`Settled`) so the Live page shows them; the other pages reload what they show
on every reconnect anyway (`LinkUp`).
Events are not posted one by one: they are buffered and flushed at most every `flush_every` seconds as one
`DaemonEvents` message, so a burst of 100 events/s costs the UI a few messages a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import time
from pathlib import Path
from typing import Any

import aiohttp
from textual.app import App
from textual.message import Message

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning, resumed

SETTLE = 500  # stored exchanges fetched after a gap the stream could not replay (the Live page keeps 500 rows)

# What a request to the daemon can fail with when the link is bad (not a bug in the TUI).
LINK_ERRORS: tuple[type[BaseException], ...] = (
    DaemonNotRunning,
    ControlError,
    aiohttp.ClientError,
    TimeoutError,
    OSError,
    ValueError,  # a malformed or incompatible answer
)


class LinkUp(Message):
    """Connected (again): `status` is the daemon's status at that moment."""

    def __init__(self, status: p.Status) -> None:
        super().__init__()
        self.status = status


class LinkDown(Message):
    """Not connected; `reason` says why, in words. `refused`: the daemon answered, and said no."""

    def __init__(self, reason: str, refused: bool = False) -> None:
        super().__init__()
        self.reason = reason
        self.refused = refused


class Settled(Message):
    """Stored exchanges, oldest first, answered since the last event seen: what a replay could not bring back."""

    def __init__(self, exchanges: list[p.Exchange]) -> None:
        super().__init__()
        self.exchanges = exchanges


class DaemonEvents(Message):
    """A batch of events, oldest first; `dropped`: events the daemon could not send us in time."""

    def __init__(self, events: list[p.Event], dropped: int) -> None:
        super().__init__()
        self.events = events
        self.dropped = dropped


def describe(exc: BaseException, socket_path: Path) -> str:
    """A short operator-facing reason for a link failure."""
    if isinstance(exc, DaemonNotRunning):
        if not os.path.exists(socket_path):
            return f"socket {socket_path} missing"
        return f"nothing answers on {socket_path}"
    if isinstance(exc, ControlError):
        return f"the daemon refused: {exc} ({exc.code})"
    if isinstance(exc, TimeoutError):
        return "the daemon did not answer in time"
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class Connection:
    """The TUI's only way to the daemon. `client` is always usable; calls fail fast while the link is down."""

    def __init__(
        self,
        app: App[Any],
        socket_path: Path,
        *,
        min_delay: float = 0.5,
        max_delay: float = 5.0,
        flush_every: float = 0.15,
        timeout: float = 10.0,
    ) -> None:
        self.app = app
        self.socket_path = socket_path
        self.client = ControlClient(socket_path, timeout=timeout)
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.flush_every = flush_every
        self.connected = False
        self.boot: str | None = None  # the daemon run whose numbering `last_seq` is in (None: not connected yet)
        self.last_seq = 0  # the newest event seen
        self.last_at = 0.0  # when it happened (or when the link first came up)
        self._buffer: list[p.Event] = []
        self._dropped = 0
        self._retry_now = asyncio.Event()

    def start(self) -> None:
        """Start following the daemon (call from the app's on_mount)."""
        self.app.set_interval(self.flush_every, self.flush, name="flush daemon events")
        self.app.run_worker(self._follow(), name="daemon link", group="link", exclusive=True, exit_on_error=False)

    def retry_now(self) -> None:
        """Skip the rest of the current backoff pause."""
        self._retry_now.set()

    async def close(self) -> None:
        """Close the client's connections (the worker ends with the app)."""
        await self.client.close()

    def flush(self) -> None:
        """Post the buffered events as one message (no-op when there are none)."""
        if not self._buffer and not self._dropped:
            return
        events, self._buffer = self._buffer, []
        dropped, self._dropped = self._dropped, 0
        self.app.post_message(DaemonEvents(events, dropped))

    async def _follow(self) -> None:
        delay = self.min_delay
        while True:
            try:
                status = await self.client.status()
                if self.boot is None:  # the first time: go on from the status (a restart since is caught below)
                    self.boot, self.last_seq, self.last_at = status.boot, status.last_event, time.time()
                stream = self.client.events(
                    on_open=functools.partial(self._up, status), since=self.last_seq, boot=self.boot or None
                )
                async for event in stream:
                    if (info := resumed(event)) is not None:
                        if self._resumed(info):
                            await self._settle()
                        continue
                    self.last_seq, self.last_at = max(self.last_seq, event.seq), max(self.last_at, event.at)
                    self._dropped += event.dropped
                    self._buffer.append(event)
                reason, refused = "the daemon closed the event stream", False
            except LINK_ERRORS as exc:
                reason, refused = describe(exc, self.socket_path), isinstance(exc, ControlError)
            was_up = self.connected
            self.flush()
            await self._down(reason, refused)
            if was_up:  # lost after a while: retry soon
                delay = self.min_delay
                await self._pause(delay)
            else:  # not there, or refused: back off
                await self._pause(delay)
                delay = min(delay * 2, self.max_delay)

    def _resumed(self, info: p.StreamResumed) -> bool:
        """The stream says what it replays: take on its numbering; say (and return) whether some could not be."""
        self.boot, self.last_seq = info.boot, info.since
        if not (info.restarted or info.lost):
            return False
        self.flush()  # what came before the gap, first
        if info.restarted:
            said = "the daemon restarted: what it finished while stopping is filled in from the stored answers"
        else:
            said = f"{info.lost} events were missed while disconnected, too long ago to replay: filled in from History"
        self.app.notify(said, severity="warning", markup=False)
        return True

    async def _settle(self) -> None:
        """What the replay cannot bring back, from the stored exchanges: those answered since the last event seen
        (the newest SETTLE of them). The replayed events come after, and tell the rest (e.g. delivery)."""
        page = await self.client.conversations(limit=SETTLE)
        since = self.last_at - 1.0  # the daemon's clock and this one are the same machine's; a second of slack
        done = [x for x in reversed(page.items) if (x.answered_at or x.asked_at) >= since and x.inbox_id is not None]
        if done:
            self.app.post_message(Settled(done))

    def _up(self, status: p.Status) -> None:
        self.connected = True
        self.app.post_message(LinkUp(status))

    async def _down(self, reason: str, refused: bool = False) -> None:
        was_up, self.connected = self.connected, False
        if was_up:
            await self.client.close()  # drop pooled connections to the old daemon
        self.app.post_message(LinkDown(reason, refused))

    async def _pause(self, seconds: float) -> None:
        self._retry_now.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._retry_now.wait(), seconds)
