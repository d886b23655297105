"""Stream mode for one app (dingtalk-protocol.md §1): a WebSocket the daemon dials out on, kept open until `stop`.

- Open: POST the gateway for a ticket (single-use, 90 s), then `ws_connect(endpoint, ticket=…)` with our own
  WebSocket pings (`heartbeat`: an unanswered one closes a dead socket) and an idle watchdog: no frame at all for
  `idle_timeout` (DingTalk pings its clients; how often is undocumented) → a new socket replaces the silent one.
- Frames: SYSTEM `ping` → ACK echoing its data; SYSTEM `disconnect` → a replacement is opened first and the old
  socket closed after it (DingTalk may stop delivering on a socket it asked to leave); CALLBACK bot message →
  handed to `on_message`, which returns once the message is committed to the inbox, and only then ACKed
  (persist before ack; a msgId seen before is stored once and ACKed all the same) — several at once, so a burst
  is committed in one batch while pings are still answered; other CALLBACK topics → 404;
  EVENT → ACK `{"status": "SUCCESS"}`.
- Reconnect: capped exponential backoff with ±20 % jitter — `first_backoff`, doubling up to twice the policy's
  `max_backoff` (60 s with the defaults, the SDKs' cap) — after a refused open, a broken or idle socket, and a
  clean close from the server alike (never a hot loop). A socket that delivered frames resets the count; after a
  `disconnect` the replacement is opened at once. A refused AppKey/AppSecret is reported as a configuration
  error (once, then again every few minutes by the reporter) and retried at the same growing pace.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp

from chatgpt_wecom import __version__
from chatgpt_wecom.daemon.channels.dingtalk.api import DingTalkClient, DingTalkConfigError, DingTalkError
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy

log = logging.getLogger(__name__)

BOT_TOPIC: Final = "/v1.0/im/bot/messages/get"
SUBSCRIPTIONS: Final = [{"type": "CALLBACK", "topic": BOT_TOPIC}]
UA: Final = f"chatgpt-wecom/{__version__}"
MAX_STORING: Final = 256  # bot messages of one app being stored at once; the socket waits beyond that
BACKOFF_SCALE: Final = 2.0  # DingTalk's cap is twice the policy's (60 s against the default 30 s)
BOT_ACK_DATA: Final = json.dumps({"response": None})
EVENT_ACK_DATA: Final = json.dumps({"status": "SUCCESS", "message": "success"})

OnMessage = Callable[[dict[str, Any]], Awaitable[None]]
Misconfiguration = Callable[[str, str, str], None]


@dataclass
class LinkState:
    """What status shows of one app's connection (never a secret)."""

    connected: bool = False
    since: float | None = None
    reconnects: int = 0
    last_error: str | None = None
    failures: int = 0  # in a row, since the last connection that delivered frames
    next_try_in: float | None = field(default=None, repr=False)

    def shown(self) -> dict[str, Any]:
        return {"connected": self.connected, "since": self.since, "reconnects": self.reconnects,
                "last_error": self.last_error}  # fmt: skip


def ack(message_id: str, data: str, code: int = 200, message: str = "OK") -> str:
    return json.dumps({"code": code, "headers": {"contentType": "application/json", "messageId": message_id},
                       "message": message, "data": data})  # fmt: skip


class _Disconnect(Exception):
    """This socket is to be replaced: the server asked it to leave, or it went silent."""


class StreamLink:
    """One app's Stream connection: `start()` keeps it open (reconnecting by itself) until `stop()`."""

    def __init__(
        self,
        client: DingTalkClient,
        session: aiohttp.ClientSession,
        policy: ConnectionPolicy,
        on_message: OnMessage,
        misconfigured: Misconfiguration,
        on_change: Callable[[], None],
    ) -> None:
        self.client = client
        self.state = LinkState()
        self._session = session
        self._policy = policy
        self._on_message = on_message
        self._misconfigured = misconfigured
        self._on_change = on_change
        self._stopping = asyncio.Event()
        self._sockets: set[aiohttp.ClientWebSocketResponse] = set()
        self._task: asyncio.Task[None] | None = None
        self._ever_up = False
        self._frames_seen: dict[int, int] = {}  # per open socket: frames it delivered
        self._storing: set[asyncio.Task[None]] = set()  # bot messages being stored, each ACKed when it is
        self._room = asyncio.Semaphore(MAX_STORING)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"dingtalk-stream:{self.client.client_id}")

    async def stop(self) -> None:
        self._stopping.set()
        if self._storing:  # messages being stored are finished (and ACKed) before the sockets close
            await asyncio.wait(set(self._storing), timeout=self._policy.ack_timeout)
        for ws in list(self._sockets):
            await ws.close()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self._policy.ack_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
            self._task = None

    def backoff(self, failures: int) -> float:
        p = self._policy
        ceiling = min(p.max_backoff * BACKOFF_SCALE, p.first_backoff * 2.0 ** (max(failures, 1) - 1))
        return ceiling * random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not cryptography

    # --- the loop ---------------------------------------------------------------------------------------
    async def _run(self) -> None:
        ws: aiohttp.ClientWebSocketResponse | None = None
        while not self._stopping.is_set():
            if ws is None:
                ws = await self._connect()
                if ws is None:
                    await self._pause()
                    continue
            try:
                reason = await self._read(ws)
            except _Disconnect as leave:
                ws = await self._replace(ws, str(leave))
                if ws is None:
                    await self._pause()
                continue
            frames = self._frames_seen.pop(id(ws), 0) > 0
            await self._close(ws)
            ws = None
            if self._stopping.is_set():
                break
            self.state.failures = 1 if frames else self.state.failures + 1
            self._down(reason)
            await self._pause()
        if ws is not None:
            await self._close(ws)
        self.state.connected = False
        self._on_change()

    async def _connect(self) -> aiohttp.ClientWebSocketResponse | None:
        """A new open socket, or None after recording why not."""
        app = self.client.client_id
        try:
            endpoint, ticket = await self.client.open_connection(SUBSCRIPTIONS, UA)
            ws = await self._session.ws_connect(
                endpoint, params={"ticket": ticket}, heartbeat=self._policy.heartbeat, autoping=True,
                timeout=aiohttp.ClientWSTimeout(ws_close=self._policy.ack_timeout),  # a stop never hangs on it
            )  # fmt: skip
        except DingTalkConfigError as exc:
            self._misconfigured(f"dingtalk {app}", str(exc), exc.hint)
            self._failed(str(exc))
            return None
        except DingTalkError as exc:
            self._failed(str(exc))
            return None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            self._failed(f"DingTalk Stream {app}: cannot connect: {type(exc).__name__}: {exc}")
            return None
        if self._stopping.is_set():
            await ws.close()
            return None
        self._sockets.add(ws)
        if self._ever_up:
            self.state.reconnects += 1
        self._ever_up = True
        self.state.connected, self.state.since, self.state.next_try_in = True, time.time(), None
        log.info("DingTalk Stream %s: connected%s", app, f" (reconnect {self.state.reconnects})"
                 if self.state.reconnects else "")  # fmt: skip
        self._on_change()
        return ws

    def _failed(self, error: str) -> None:
        """An open that failed: logged when the reason is new (a wrong secret is not a line a minute)."""
        self.state.failures += 1
        log.log(logging.DEBUG if error == self.state.last_error else logging.WARNING, "%s", error)
        self.state.last_error = error
        self._on_change()

    def _down(self, reason: str) -> None:
        self.state.connected = False
        self.state.last_error = f"DingTalk Stream {self.client.client_id}: {reason}"
        log.warning("DingTalk Stream %s: %s; reconnecting", self.client.client_id, reason)
        self._on_change()

    async def _pause(self) -> None:
        delay = self.backoff(self.state.failures)
        self.state.next_try_in = delay
        log.info("DingTalk Stream %s: next try in %.1f s", self.client.client_id, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)

    async def _replace(self, old: aiohttp.ClientWebSocketResponse, why: str) -> aiohttp.ClientWebSocketResponse | None:
        """Open a new socket while the old one is still read, then close the old one (no gap in between)."""
        log.info("DingTalk Stream %s: %s; opening a new connection", self.client.client_id, why)
        draining = asyncio.create_task(self._drain(old))
        new = await self._connect()
        await self._close(old)
        await draining
        self._frames_seen.pop(id(old), None)
        if new is None:
            self.state.connected = False
            self._on_change()
        else:
            self.state.failures = 0
        return new

    async def _drain(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        with contextlib.suppress(_Disconnect):
            await self._read(ws)

    async def _close(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self._sockets.discard(ws)
        with contextlib.suppress(Exception):
            await ws.close()

    async def _read(self, ws: aiohttp.ClientWebSocketResponse) -> str:
        """Handle frames until the socket ends (the reason), or is to be replaced (`_Disconnect`: the server asked
        to leave, or it has been silent for `idle_timeout`)."""
        while True:
            try:
                msg = await ws.receive(timeout=self._policy.idle_timeout)
            except TimeoutError:
                raise _Disconnect(f"no frame for {self._policy.idle_timeout:g} s (idle watchdog)") from None
            if msg.type == aiohttp.WSMsgType.TEXT:
                self._frames_seen[id(ws)] = self._frames_seen.get(id(ws), 0) + 1
                await self._frame(ws, msg.data)
            elif msg.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING, aiohttp.WSMsgType.CLOSED):
                return f"closed by the server (code {ws.close_code})"
            elif msg.type == aiohttp.WSMsgType.ERROR:
                return f"connection broken: {ws.exception()!r}"

    async def _frame(self, ws: aiohttp.ClientWebSocketResponse, raw: str) -> None:
        try:
            frame = json.loads(raw)
            headers = frame.get("headers") or {}
            kind, topic = str(frame.get("type", "")), str(headers.get("topic", ""))
            message_id, data = str(headers.get("messageId", "")), frame.get("data")
        except (ValueError, AttributeError):
            log.warning("DingTalk Stream %s: a frame that is not JSON ignored", self.client.client_id)
            return
        data = data if isinstance(data, str) else json.dumps(data)
        if kind == "SYSTEM":
            if topic == "ping":
                await self._send(ws, ack(message_id, data))
            elif topic == "disconnect":
                raise _Disconnect("the server asked for a new connection (disconnect)")
            return
        if kind == "EVENT":
            await self._send(ws, ack(message_id, EVENT_ACK_DATA))
            return
        if kind == "CALLBACK" and topic == BOT_TOPIC:
            await self._room.acquire()  # stored concurrently (the inbox commits them in one batch), in order
            task = asyncio.create_task(self._store(ws, message_id, data), name=f"dingtalk-store:{message_id}")
            self._storing.add(task)
            task.add_done_callback(self._storing.discard)
            return
        await self._send(ws, ack(message_id, data, 404, "not implement"))

    async def _store(self, ws: aiohttp.ClientWebSocketResponse, message_id: str, data: str) -> None:
        try:
            await self._send(ws, ack(message_id, BOT_ACK_DATA, *await self._deliver(data)))
        finally:
            self._room.release()

    async def _deliver(self, data: str) -> tuple[int, str]:
        """Hand a bot message over; (code, message) of its ACK, sent only once it is stored (or refused)."""
        try:
            message = json.loads(data)
            if not isinstance(message, dict):
                raise ValueError("not an object")
        except ValueError:
            log.warning("DingTalk Stream %s: a bot message whose data is not a JSON object", self.client.client_id)
            return 400, "bad data"
        try:
            await self._on_message(message)
        except Exception:
            log.exception("DingTalk Stream %s: a bot message could not be stored", self.client.client_id)
            return 500, "not stored"
        return 200, "OK"

    async def _send(self, ws: aiohttp.ClientWebSocketResponse, text: str) -> None:
        with contextlib.suppress(ConnectionError, aiohttp.ClientError):
            await ws.send_str(text)
