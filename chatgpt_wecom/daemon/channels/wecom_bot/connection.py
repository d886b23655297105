"""The AI bot's one WebSocket: dial, subscribe, heartbeat, read, acknowledge, reconnect — until stopped or kicked.

- Subscribe right after the handshake; the heartbeat (a JSON `ping` every `heartbeat` s) starts only once it is
  accepted. `missed_pongs` pings unanswered in a row: the connection is dead and is replaced.
- After every close — the server's, a network error, a dead heartbeat, a refused subscribe — it dials again after
  `backoff(n)` seconds (n counts the closes since the last connection that stayed up; never a hot loop).
- Except a kick (`disconnected_event`: another instance subscribed with this bot id): it closes, says so once, and
  stays down — reconnecting would kick the other instance back, for ever.
- `request(frame)` sends one frame and returns its acknowledgement; frames sharing a req_id go one at a time, each
  waiting for its ack (`ack_timeout`). On a close every pending request fails with `NotConnected`.
- `epoch` counts the subscribed connections: a callback's req_id is answerable only on the connection it came by.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from chatgpt_wecom.config import redact_userinfo
from chatgpt_wecom.daemon.channels.base import ChannelState
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy
from chatgpt_wecom.daemon.channels.wecom_bot import protocol
from chatgpt_wecom.daemon.channels.wecom_bot.protocol import Received

log = logging.getLogger(__name__)

MAX_FRAME = 4 << 20  # bytes of one received frame


class NotConnected(Exception):
    """No subscribed connection (or it closed before the frame was acknowledged)."""


class AckTimeout(Exception):
    """The server did not acknowledge a frame in time."""


class CommandFailed(Exception):
    """The server refused a frame: `errcode`, `errmsg`."""

    def __init__(self, cmd: str, errcode: int, errmsg: str) -> None:
        super().__init__(f"{cmd} refused: errcode {errcode} {errmsg}".strip())
        self.errcode, self.errmsg = errcode, errmsg


class SubscribeRefused(CommandFailed):
    pass


Callback = Callable[[Received, int], None]  # (callback frame, epoch it came on)
Refused = Callable[[SubscribeRefused], None]


class Connection:
    def __init__(self, http: aiohttp.ClientSession, url: str, bot_id: str, secret: str, policy: ConnectionPolicy,
                 state: ChannelState, on_callback: Callback, on_refused: Refused) -> None:  # fmt: skip
        self._http = http
        self._url = url
        self._bot_id = bot_id
        self._secret = secret
        self._policy = policy
        self._state = state
        self._on_callback = on_callback
        self._on_refused = on_refused
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Future[Received]] = {}
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # per req_id: its lock, and how many use it
        self._stopping = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[bool] | None = None  # the close a kick started (a strong reference)
        self._missed = 0
        self._ping_sent: dict[str, float] = {}
        self.epoch = 0
        self.subscribed = False
        self.kicked = False
        self.refused: SubscribeRefused | None = None  # the last subscribe's refusal, until one is accepted
        self.last_ping_rtt_ms: float | None = None

    @property
    def where(self) -> str:
        return redact_userinfo(self._url)

    @property
    def running(self) -> bool:
        """Whether it is connected or will dial again (False once stopped or kicked)."""
        return self._task is not None and not self._task.done()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="wecom_bot:connection")

    async def stop(self) -> None:
        """Close the connection, fail what waits for an ack, end the task; safe to call again."""
        self._stopping.set()
        ws = self._ws
        if ws is not None and not ws.closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._fail_pending("the channel stopped")

    def kick(self) -> None:
        """Another instance took this bot id: close and stay down."""
        if self.kicked:
            return
        self.kicked = True
        log.error("wecom_bot: another instance subscribed with this bot id (%s); not reconnecting — stop the other "
                  "instance, then restart this one", self._bot_id)  # fmt: skip
        self._state.failed("kicked: another instance subscribed with this bot id")
        ws = self._ws
        if ws is not None:  # the server closes it too; closing here also ends a socket it left half-alive
            self._closing = asyncio.create_task(ws.close(), name="wecom_bot:kicked")

    async def request(self, frame: dict[str, Any]) -> Received:
        """Send `frame` and wait for its acknowledgement (after any earlier frame with its req_id).
        NotConnected, AckTimeout, CommandFailed (errcode ≠ 0)."""
        req_id = frame["headers"]["req_id"]
        lock, users = self._locks.get(req_id, (asyncio.Lock(), 0))
        self._locks[req_id] = (lock, users + 1)
        try:
            async with lock:
                return await self._request(frame, req_id)
        finally:
            lock, users = self._locks[req_id]
            if users <= 1:
                del self._locks[req_id]
            else:
                self._locks[req_id] = (lock, users - 1)

    async def _request(self, frame: dict[str, Any], req_id: str) -> Received:
        ws = self._ws
        if ws is None or ws.closed or not self.subscribed:
            raise NotConnected("the AI bot is not connected")
        future: asyncio.Future[Received] = asyncio.get_running_loop().create_future()
        self._pending[req_id] = future
        try:
            try:
                await ws.send_str(json.dumps(frame, ensure_ascii=False))
            except (ConnectionError, RuntimeError, aiohttp.ClientError) as exc:
                raise NotConnected(f"the connection closed while sending ({type(exc).__name__})") from None
            try:
                ack = await asyncio.wait_for(future, self._policy.ack_timeout)
            except TimeoutError:
                raise AckTimeout(f"{frame['cmd']} not acknowledged within {self._policy.ack_timeout:g} s") from None
        finally:
            if self._pending.get(req_id) is future:
                del self._pending[req_id]
        if ack.errcode:
            raise CommandFailed(frame["cmd"], ack.errcode, ack.errmsg)
        return ack

    def _fail_pending(self, why: str) -> None:
        for future in self._pending.values():
            if not future.done():
                future.set_exception(NotConnected(f"the connection closed ({why})"))
        self._pending.clear()

    # --- the connection's life ------------------------------------------------------------------------------
    async def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            up_at: float | None = None
            try:
                up_at = await self._session()
                reason = "closed by the server"
            except asyncio.CancelledError:
                raise
            except SubscribeRefused as exc:
                reason = str(exc)
                self.refused = exc
                self._on_refused(exc)
            except Exception as exc:  # every failure of one connection leads to the next
                reason = _describe(exc)
            finally:
                self._down()
            if self._stopping.is_set():
                return
            if self.kicked:
                return
            if up_at is not None and time.monotonic() - up_at >= 2 * self._policy.heartbeat:
                failures = 0  # it stayed up: the next close starts the backoff afresh
            failures += 1
            self._state.failed(reason)
            self._state.reconnects += 1
            delay = self._policy.backoff(failures)
            log.warning("wecom_bot: connection to %s lost (%s); reconnecting in %.1f s", self.where, reason, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    def _down(self) -> None:
        was_up = self.subscribed
        self.subscribed = False
        self._ws = None
        self._state.up = False
        self._fail_pending("connection lost")
        self._ping_sent.clear()
        if was_up:
            log.info("wecom_bot: disconnected from %s", self.where)

    async def _session(self) -> float | None:
        """One connection, from dial to close; when it was subscribed (monotonic), None if it never was."""
        timeout = aiohttp.ClientWSTimeout(ws_close=2.0)
        async with self._http.ws_connect(self._url, heartbeat=None, autoping=True, timeout=timeout,
                                         max_msg_size=MAX_FRAME) as ws:  # fmt: skip
            self._ws = ws
            await self._subscribe(ws)
            up_at = time.monotonic()
            self.epoch += 1
            self.subscribed, self._missed, self.refused = True, 0, None
            self._state.went_up()
            log.info("wecom_bot: connected to %s and subscribed as %s", self.where, self._bot_id)
            heartbeat = asyncio.create_task(self._heartbeat(ws), name="wecom_bot:heartbeat")
            try:
                async for message in ws:
                    if message.type == aiohttp.WSMsgType.TEXT:
                        self._received(str(message.data))
                    elif message.type == aiohttp.WSMsgType.ERROR:
                        break
            finally:
                heartbeat.cancel()
                await asyncio.gather(heartbeat, return_exceptions=True)
            return up_at

    async def _subscribe(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        frame = protocol.subscribe(self._bot_id, self._secret)
        req_id = frame["headers"]["req_id"]
        await ws.send_str(json.dumps(frame, ensure_ascii=False))
        deadline = time.monotonic() + self._policy.ack_timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AckTimeout(f"subscribe not acknowledged within {self._policy.ack_timeout:g} s")
            try:
                message = await ws.receive(timeout=left)
            except TimeoutError:
                continue
            if message.type != aiohttp.WSMsgType.TEXT:
                raise ConnectionError(f"closed during subscribe ({message.type.name.lower()})")
            try:
                ack = protocol.parse(str(message.data))
            except ValueError:
                continue
            if ack.req_id == req_id:
                if ack.errcode:
                    raise SubscribeRefused(protocol.SUBSCRIBE, ack.errcode, ack.errmsg)
                return

    async def _heartbeat(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        while True:
            await asyncio.sleep(self._policy.heartbeat)
            if self._missed >= self._policy.missed_pongs:
                log.warning("wecom_bot: %d pings unanswered; the connection is dead, replacing it", self._missed)
                await ws.close()
                return
            self._missed += 1
            frame = protocol.ping()
            self._ping_sent[frame["headers"]["req_id"]] = time.monotonic()
            try:
                await ws.send_str(json.dumps(frame))
            except (ConnectionError, RuntimeError, aiohttp.ClientError):
                return

    def _received(self, text: str) -> None:
        try:
            frame = protocol.parse(text)
        except ValueError:
            log.warning("wecom_bot: a frame that is not JSON was ignored (%d bytes)", len(text))
            return
        if frame.cmd:
            self._on_callback(frame, self.epoch)
            return
        sent = self._ping_sent.pop(frame.req_id, None)
        if sent is not None:
            self._missed = 0
            self.last_ping_rtt_ms = round((time.monotonic() - sent) * 1000, 1)
            return
        future = self._pending.get(frame.req_id)
        if future is not None and not future.done():
            future.set_result(frame)


def _describe(exc: BaseException) -> str:
    """A failure in words, safe to log (aiohttp's messages name the URL, never the secret)."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
