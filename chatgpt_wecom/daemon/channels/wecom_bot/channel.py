"""The WeCom AI bot (智能机器人) as a channel: callbacks in over the daemon's own WebSocket, answers streamed in
place (one message, rewritten with the cumulative text), the rest pushed with `aibot_send_msg`.

- A message is handed to the intake in the order it came (the intake dedupes its msgid, across restarts too).
  In a group the leading @mention is stripped; a bare @ asks about the quoted message. Voice comes transcribed,
  a picture is downloaded and decrypted on arrival (its URL lives 5 min), a mixed message is its picture (kept for
  the question) followed by its text. enter_chat gets the welcome at once; feedback_event is stored.
- `live_reply` opens the stream when the message came on the current connection: a first frame at once ("思考中…",
  with the feedback id = the message's msgid), then the newest text at most every `frame_interval` s, one frame at
  a time, each waiting for its ack; superseded texts are skipped. Part 0 of the answer is the stream's finish frame.
- Part 0 with no open stream (the message came before a restart or reconnect): within 5.5 min of the message, one
  try of the finish frame on the stored req_id and the deterministic stream id (`s_` + msgid) — it closes the
  bubble a dead stream left, if the server still takes it — else (and on any error) `aibot_send_msg` markdown.
  Expired (846608) or unknown (846605) streams fall back the same way. Later parts are `aibot_send_msg` markdown.
- Images: chunked upload, then `aibot_send_msg` image; the media_id is reused by later tries for 2 days.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import (
    Capabilities,
    Channel,
    DeliveryError,
    Feedback,
    Intake,
    LiveReply,
    Misconfigured,
    Origin,
    Outgoing,
    Rejected,
    RetryLater,
)
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from chatgpt_wecom.daemon.channels.wecom_bot import inbound, media, protocol
from chatgpt_wecom.daemon.channels.wecom_bot.connection import (
    AckTimeout,
    CommandFailed,
    Connection,
    NotConnected,
    SubscribeRefused,
)
from chatgpt_wecom.daemon.channels.wecom_bot.protocol import Received
from chatgpt_wecom.daemon.channels.wecom_bot.stream import LiveStream, stream_id
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.images import extension, read_image
from chatgpt_wecom.daemon.pipeline.pacing import Rate

log = logging.getLogger(__name__)

IMAGE_NOTE = "图片如下。"  # a stream whose answer is an image ends with this (a finish frame needs visible text)
EMPTY = "（无内容）"
LATE_FINISH = 330.0  # seconds after a message its stream may still be finished on the wire (it expires at 360)
MEDIA_REUSE = 2 * 24 * 3600.0  # an upload is reused this long (the server keeps it 3 days)
KNOWN_REQS = 4096  # callback req_ids remembered (which connection each came on)
HINT = "check wecom_bot_id and wecom_bot_secret (admin console: 智能机器人 → API 模式 → 长连接)"
RATINGS = {1: "good", 2: "bad", 3: "cancelled"}

Misconfiguration = Callable[[str, str, str], None]


def _visible(text: str) -> str:
    return text if text.strip() else EMPTY  # WeCom ignores invisible content: the bubble would keep "thinking"


def _delivery_error(exc: Exception) -> DeliveryError:
    if isinstance(exc, CommandFailed):
        if exc.errcode in protocol.RATE_LIMITED:
            return RetryLater(str(exc), slow_down=True)
        if exc.errcode in protocol.RETRYABLE:
            return RetryLater(str(exc))
        return Rejected(str(exc))
    return RetryLater(str(exc))  # NotConnected, AckTimeout


class WeComBot(Channel):
    name = "wecom_bot"
    namespace = "wecom"  # the same people as the app: one quota, one set of lists
    capabilities = Capabilities(
        text_limit=20000,
        formats=frozenset({"markdown"}),
        streams_in_place=True,
        sends_unprompted=True,
        media_in=frozenset({"voice", "image"}),
        media_out=frozenset({"image"}),
        rates=(Rate(30, 60), Rate(1000, 3600)),
        message_max_age=300.0,
    )

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        retry: RetryPolicy,
        misconfigured: Misconfiguration,
        connection: ConnectionPolicy,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._policy = connection
        self._misconfigured = misconfigured
        self.conn = Connection(
            http, settings.wecom_bot_ws_url, settings.wecom_bot_id, settings.wecom_bot_secret.get_secret_value(),
            connection, self.state, self._callback, self._subscribe_refused,
        )  # fmt: skip
        self.pictures = media.Pictures(http, retry.timeout)
        self._intake: Intake | None = None
        self._messages: asyncio.Queue[tuple[Received, int]] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._reqs: dict[str, int] = {}  # callback req_id → the connection (epoch) it came on
        self._streams: dict[str, LiveStream] = {}  # message id → its open stream
        self._finished: dict[str, None] = {}  # message ids whose stream this process finished (oldest first)
        self._stopped = False

    @staticmethod
    def configured(settings: Settings) -> bool:
        return settings.wecom_bot_on

    # --- lifecycle --------------------------------------------------------------------------------------------
    async def start(self, intake: Intake) -> None:
        self._intake = intake
        self._reader = asyncio.create_task(self._read_messages(), name="wecom_bot:messages")
        self.conn.start()

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        for stream in self._streams.values():
            stream.cancel()
        self._streams.clear()
        await self.conn.stop()
        tasks = [*self._tasks, *([self._reader] if self._reader else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _subscribe_refused(self, exc: SubscribeRefused) -> None:
        self._misconfigured(f"wecom_bot {exc.errcode}", f"wecom_bot: subscribe {exc}", HINT)

    # --- received ---------------------------------------------------------------------------------------------
    def _callback(self, frame: Received, epoch: int) -> None:
        if frame.cmd == protocol.MSG_CALLBACK:
            self._reqs[frame.req_id] = epoch
            while len(self._reqs) > KNOWN_REQS:
                del self._reqs[next(iter(self._reqs))]
            self._messages.put_nowait((frame, epoch))
        elif frame.cmd == protocol.EVENT_CALLBACK:
            event = str((frame.body.get("event") or {}).get("eventtype") or "")
            if event == "disconnected_event":
                self.conn.kick()
                return
            task = asyncio.create_task(self._event(event, frame), name=f"wecom_bot:{event}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _read_messages(self) -> None:
        while True:
            frame, _ = await self._messages.get()
            try:
                for message in inbound.messages(frame, self._settings.wecom_bot_name):
                    if message.msg_type == "image":
                        await self.pictures.prefetch(message.payload["media_id"])  # now: its URL lives 5 minutes
                    assert self._intake is not None
                    await self._intake(self, message)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("wecom_bot: a message could not be taken in (msgid %s)", frame.body.get("msgid"))

    async def _event(self, event: str, frame: Received) -> None:
        body = frame.body
        user = str((body.get("from") or {}).get("userid") or "")
        try:
            if event == "enter_chat" and self._settings.wecom_bot_welcome:
                await self.conn.request(protocol.welcome(frame.req_id, self._settings.wecom_bot_welcome))
            elif event == "feedback_event":
                found = (body.get("event") or {}).get("feedback_event") or {}
                rating = RATINGS.get(int(found.get("type") or 0))
                if rating is None or not found.get("id"):
                    return
                reasons = tuple(int(r) for r in found.get("inaccurate_reason_list") or [])
                verdict = Feedback(str(found["id"]), user, rating, str(found.get("content") or ""), reasons)
                assert self._intake is not None
                await self._intake.feedback(self, verdict)
        except (CommandFailed, AckTimeout, NotConnected) as exc:
            log.warning("wecom_bot: %s of %s not answered: %s", event, user, exc)
        except (ValueError, TypeError):
            log.warning("wecom_bot: a malformed %s of %s was ignored", event, user)

    # --- answering ------------------------------------------------------------------------------------------
    def live_reply(self, origin: Origin) -> LiveReply | None:
        req_id = origin.payload.get("req_id", "")
        current = self.conn.subscribed and self._reqs.get(req_id) == self.conn.epoch
        if not current or ":" in origin.message_id:
            return None  # before a restart or reconnect (the req_id is gone with its connection), or a part message
        old = self._streams.pop(origin.message_id, None)
        if old is not None:
            old.cancel()
        stream = LiveStream(self.conn, req_id, origin.message_id, self._policy.frame_interval)
        self._streams[origin.message_id] = stream
        return stream

    async def send(self, message: Outgoing) -> str | None:
        if self.conn.refused is not None and not self.conn.subscribed:
            raise Misconfigured(f"wecom_bot: subscribe {self.conn.refused}", HINT)
        try:
            if message.kind == "image":
                return await self._send_image(message)
            content = _visible(message.content)
            if message.part == 0 and message.origin is not None and await self._finish(message.origin, content):
                return None
            await self.conn.request(protocol.send_markdown(self._chatid(message), content))
            return None
        except (CommandFailed, AckTimeout, NotConnected) as exc:
            raise _delivery_error(exc) from None

    @staticmethod
    def _chatid(message: Outgoing) -> str:
        return message.chat or message.user_id  # a group's chatid, or the user's id for a private chat

    async def _finish(self, origin: Origin, content: str) -> bool:
        """End the answer's stream with `content`; False when it must go as a message of its own. Raises (for a
        later try) when the connection is down, the server is busy or the frame's fate is unknown."""
        if origin.message_id in self._finished:
            return False  # an earlier try finished it (then the image after it failed): never a second finish
        stream = self._streams.pop(origin.message_id, None)
        if stream is not None:
            await stream.close()
            if stream.refused is not None or stream.ended:
                return False
            req_id, feedback = stream.req_id, (origin.message_id if stream.frames == 0 else None)
        else:
            req_id, feedback = origin.payload.get("req_id", ""), origin.message_id
            if not req_id or ":" in origin.message_id or time.time() - origin.received_at > LATE_FINISH:
                return False
        frame = protocol.stream(req_id, stream_id(origin.message_id), content, finish=True, feedback_id=feedback)
        try:
            await self.conn.request(frame)
        except CommandFailed as exc:
            if exc.errcode in protocol.RETRYABLE:
                self._keep(origin.message_id, stream)
                raise
            log.info("wecom_bot: the stream of %s cannot be finished (%s); the answer goes as a message",
                     origin.message_id, exc)  # fmt: skip
            return False
        except (AckTimeout, NotConnected):
            self._keep(origin.message_id, stream)  # the next try finishes it (on the next connection)
            raise
        self._finished[origin.message_id] = None
        while len(self._finished) > KNOWN_REQS:
            del self._finished[next(iter(self._finished))]
        return True

    def _keep(self, message_id: str, stream: LiveStream | None) -> None:
        if stream is not None:
            self._streams[message_id] = stream

    async def _send_image(self, message: Outgoing) -> str:
        if message.part == 0 and message.origin is not None:
            await self._finish(message.origin, IMAGE_NOTE)  # the bubble says the image is coming
        media_id = message.media_ref
        if media_id is None or message.media_at is None or time.time() - message.media_at > MEDIA_REUSE:
            try:
                data, content_type = await read_image(message.content)
                media_id = await media.upload(self.conn.request, "image", f"image{extension(content_type)}", data)
            except (MediaError, ValueError) as exc:
                raise Rejected(str(exc)) from None
        await self.conn.request(protocol.send_image(self._chatid(message), media_id))
        return media_id

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        return await self.pictures.fetch(ref)

    def detail(self) -> dict[str, Any]:
        """What status shows of the AI bot besides up/since (connected since), reconnects and the last error, which
        every channel reports: where it connects, as which bot, the last ping's round trip, whether it was kicked,
        and the answers growing in place now (no secret)."""
        return {
            "ws_url": self.conn.where, "bot_id": self._settings.wecom_bot_id,
            "last_ping_rtt_ms": self.conn.last_ping_rtt_ms, "kicked": self.conn.kicked,
            "open_streams": len(self._streams),
        }  # fmt: skip
