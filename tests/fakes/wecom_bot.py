"""FakeAIBot: a real WebSocket stand-in for the WeCom AI bot's long connection, on 127.0.0.1 (plain ws://).

It speaks the wire format of wecom-aibot-protocol.md: JSON frames `{cmd, headers: {req_id}, body}`, acks
`{headers: {req_id}, errcode, errmsg[, body]}` without a cmd.

* `aibot_subscribe` — only the configured bot id and secret (else errcode 40001, and the connection stays open, as
  the server's is undocumented). A second subscribed connection kicks the first: `disconnected_event`, then close.
* `ping` — acked while `ack_pings` is true.
* `aibot_respond_msg` — only on the req_id of a message callback (else 846605, also for an event's req_id); a
  stream is `(req_id, stream id)`: every frame's content is recorded; past `stream_ttl` s after its first frame
  846608; content over 20480 bytes 40058; a frame after `finish` is recorded in `late_frames` (a defect).
* `aibot_respond_welcome_msg` — only on an enter_chat event's req_id. `aibot_send_msg` — only to a chat that wrote
  first (else 93006); recorded in `sent`. The upload trio checks chunk indexes (0-based), sizes and the md5.
* Scripting: `fail(cmd, errcode, times)` answers the next frames of `cmd` with an error; `ack_pings`, `ack_frames`;
  `close_after_subscribe` drops every connection right after its subscribe is acked; `kick()`, `drop()`.
* `push_text`, `push`, `push_event` send callbacks on the live connection. `serve_media` hosts encrypted files.
* Every frame either way is in `frames` (with `time.monotonic()`); `connections` counts the WebSockets opened and
  `subscribed_at` when each subscribe was accepted. `wait_for(predicate)` wakes on every frame.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Final

from aiohttp import WSMsgType, web

from tests.fakes.waiting import until

CONTENT_LIMIT: Final = 20480
CHUNK_LIMIT: Final = 512 * 1024
ERRMSGS: Final = {
    40001: "invalid credential",
    40058: "content exceed max length",
    846605: "invalid req_id",
    846608: "stream message update expired",
    846609: "aibot websocket not subscribed",
    6000: "command conflict",
    93006: "invalid chatid",
    45009: "api freq out of limit",
}
MSG_IDS = itertools.count(1)


@dataclass
class Frame:
    at: float
    way: str  # "in": from the daemon; "out": to it
    conn: int  # which connection (1, 2, …)
    data: dict[str, Any]

    @property
    def cmd(self) -> str:
        return str(self.data.get("cmd") or "")

    @property
    def req_id(self) -> str:
        return str(self.data.get("headers", {}).get("req_id") or "")

    @property
    def body(self) -> dict[str, Any]:
        body = self.data.get("body")
        return body if isinstance(body, dict) else {}


@dataclass
class Stream:
    req_id: str
    id: str
    first_at: float
    contents: list[str] = field(default_factory=list)
    finished: bool = False
    feedback_id: str | None = None

    @property
    def text(self) -> str:
        return self.contents[-1] if self.contents else ""


@dataclass
class _Callback:
    kind: str  # "msg" | event type
    chat: str
    at: float


class FakeAIBot:
    def __init__(self, bot_id: str = "aibFAKEBOTID", secret: str = "FAKESECRET") -> None:
        self.bot_id, self.secret = bot_id, secret
        self.frames: list[Frame] = []
        self.connections = 0
        self.subscribed_at: list[float] = []
        self.streams: dict[tuple[str, str], Stream] = {}
        self.sent: list[dict[str, Any]] = []  # accepted aibot_send_msg bodies
        self.late_frames: list[Frame] = []
        self.media: dict[str, bytes] = {}  # uploaded: media_id → bytes
        self.ack_pings = True
        self.ack_frames = True
        self.close_after_subscribe = False
        self.stream_ttl = 360.0
        self._failures: dict[str, list[int]] = {}
        self._callbacks: dict[str, _Callback] = {}
        self._chats: set[str] = set()
        self._uploads: dict[str, dict[str, Any]] = {}
        self._files: dict[str, bytes] = {}
        self._live: tuple[int, web.WebSocketResponse] | None = None
        self._open: dict[int, web.WebSocketResponse] = {}
        self._changed = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ----------------------------------------------------------------------------------------
    async def start(self) -> FakeAIBot:
        app = web.Application()
        app.router.add_get("/", self._ws)
        app.router.add_get("/media/{name}", self._file)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None
        self.port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        return self

    async def close(self) -> None:
        for ws in list(self._open.values()):
            with contextlib.suppress(Exception):
                await ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeAIBot:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/"

    @property
    def subscribed(self) -> bool:
        return self._live is not None and not self._live[1].closed

    # --- scripting ----------------------------------------------------------------------------------------
    def fail(self, cmd: str, errcode: int, times: int = 1) -> None:
        self._failures.setdefault(cmd, []).extend([errcode] * times)

    async def kick(self) -> None:
        """What the server does when another instance subscribes: disconnected_event, then close."""
        if self._live is None:
            return
        n, ws = self._live
        await self._send(n, ws, {"cmd": "aibot_event_callback", "headers": {"req_id": secrets.token_hex(16)},
                                 "body": {"msgid": secrets.token_hex(8), "create_time": int(time.time()),
                                          "aibotid": self.bot_id, "msgtype": "event",
                                          "event": {"eventtype": "disconnected_event"}}})  # fmt: skip
        self._live = None
        await ws.close()

    async def drop(self) -> None:
        """An abrupt end of the live connection (no close handshake)."""
        if self._live is None:
            return
        _, ws = self._live
        self._live = None
        transport = ws._req.transport if ws._req is not None else None
        if transport is not None:
            transport.abort()

    def serve_media(self, encrypted: bytes) -> str:
        name = secrets.token_hex(6)
        self._files[name] = encrypted
        return f"http://127.0.0.1:{self.port}/media/{name}"

    async def push(self, msgtype: str, user: str, content: dict[str, Any], *, chat: str = "",
                   msgid: str | None = None, quote: dict[str, Any] | None = None) -> tuple[str, str]:  # fmt: skip
        """A message callback from `user` (in group `chat` when given); (req_id, msgid)."""
        msgid = msgid or f"MSG{next(MSG_IDS):06d}{secrets.token_hex(4)}"
        body: dict[str, Any] = {"msgid": msgid, "aibotid": self.bot_id, "chattype": "group" if chat else "single",
                                "from": {"userid": user}, "msgtype": msgtype, msgtype: content}  # fmt: skip
        if chat:
            body["chatid"] = chat
        if quote:
            body["quote"] = quote
        req_id = secrets.token_hex(16)
        self._callbacks[req_id] = _Callback("msg", chat or user, time.monotonic())
        self._chats.add(chat or user)
        await self._push({"cmd": "aibot_msg_callback", "headers": {"req_id": req_id}, "body": body})
        return req_id, msgid

    async def push_text(self, user: str, text: str, *, chat: str = "", msgid: str | None = None,
                        quote: dict[str, Any] | None = None) -> tuple[str, str]:  # fmt: skip
        return await self.push("text", user, {"content": text}, chat=chat, msgid=msgid, quote=quote)

    async def push_event(self, eventtype: str, user: str, detail: dict[str, Any] | None = None) -> str:
        req_id = secrets.token_hex(16)
        event: dict[str, Any] = {"eventtype": eventtype}
        if detail is not None:
            event[eventtype] = detail
        self._callbacks[req_id] = _Callback(eventtype, user, time.monotonic())
        await self._push({"cmd": "aibot_event_callback", "headers": {"req_id": req_id},
                          "body": {"msgid": secrets.token_hex(8), "create_time": int(time.time()),
                                   "aibotid": self.bot_id, "chattype": "single", "from": {"userid": user},
                                   "msgtype": "event", "event": event}})  # fmt: skip
        return req_id

    async def _push(self, frame: dict[str, Any]) -> None:
        assert self._live is not None, "no subscribed connection to push to"
        await self._send(*self._live, frame)

    # --- what the daemon did ------------------------------------------------------------------------------
    def sent_frames(self, cmd: str | None = None) -> list[Frame]:
        return [f for f in self.frames if f.way == "in" and (cmd is None or f.cmd == cmd)]

    def streams_of(self, req_id: str) -> list[Stream]:
        return [s for (r, _), s in self.streams.items() if r == req_id]

    def markdowns(self, chat: str) -> list[str]:
        return [b["markdown"]["content"] for b in self.sent if b["chatid"] == chat and b.get("msgtype") == "markdown"]

    def seen(self, req_id: str, chat: str) -> str:
        """What the user reads of an answer: its streams' final texts, then the messages pushed to the chat."""
        return "".join([*(s.text for s in self.streams_of(req_id)), *self.markdowns(chat)])

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0, *, what: str = "") -> None:
        try:
            await until(self._changed, predicate, timeout)
        except TimeoutError:
            tail = "\n".join(f"{f.way} {f.conn} {json.dumps(f.data, ensure_ascii=False)[:200]}"
                             for f in self.frames[-15:])  # fmt: skip
            raise AssertionError(f"FakeAIBot: no {what or 'condition'} after {timeout:g} s\n{tail}") from None

    async def wait_finished(self, req_id: str, timeout: float = 10.0) -> Stream:
        await self.wait_for(lambda: any(s.finished for s in self.streams_of(req_id)), timeout,
                            what=f"a finished stream on {req_id}")  # fmt: skip
        return next(s for s in self.streams_of(req_id) if s.finished)

    # --- the server -----------------------------------------------------------------------------------------
    async def _file(self, request: web.Request) -> web.Response:
        data = self._files.get(request.match_info["name"])
        if data is None:
            raise web.HTTPNotFound
        return web.Response(body=data, content_type="application/octet-stream")

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True, heartbeat=None)
        await ws.prepare(request)
        self.connections += 1
        n = self.connections
        self._open[n] = ws
        await self._notify()
        try:
            async for message in ws:
                if message.type != WSMsgType.TEXT:
                    continue
                data = json.loads(message.data)
                frame = Frame(time.monotonic(), "in", n, data)
                self.frames.append(frame)
                await self._handle(n, ws, frame)
                await self._notify()
        finally:
            self._open.pop(n, None)
            if self._live is not None and self._live[0] == n:
                self._live = None
            await self._notify()
        return ws

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    async def _send(self, n: int, ws: web.WebSocketResponse, data: dict[str, Any]) -> None:
        self.frames.append(Frame(time.monotonic(), "out", n, data))
        with contextlib.suppress(ConnectionError, RuntimeError):
            await ws.send_str(json.dumps(data, ensure_ascii=False))
        await self._notify()

    async def _ack(self, n: int, ws: web.WebSocketResponse, req_id: str, errcode: int = 0,
                   body: dict[str, Any] | None = None) -> None:  # fmt: skip
        ack: dict[str, Any] = {"headers": {"req_id": req_id}, "errcode": errcode,
                               "errmsg": ERRMSGS.get(errcode, "ok" if not errcode else "error")}  # fmt: skip
        if body is not None:
            ack["body"] = body
        await self._send(n, ws, ack)

    async def _handle(self, n: int, ws: web.WebSocketResponse, frame: Frame) -> None:
        cmd, req_id, body = frame.cmd, frame.req_id, frame.body
        if cmd == "aibot_subscribe":
            if body.get("bot_id") != self.bot_id or body.get("secret") != self.secret:
                await self._ack(n, ws, req_id, 40001)
                return
            old = self._live
            self._live = (n, ws)
            self.subscribed_at.append(time.monotonic())
            await self._ack(n, ws, req_id)
            if old is not None and not old[1].closed:
                self._live = old
                await self.kick()
                self._live = (n, ws)
            if self.close_after_subscribe:
                await self.drop()
            return
        if self._live is None or self._live[0] != n:
            await self._ack(n, ws, req_id, 846609)
            return
        if cmd == "ping":
            if self.ack_pings:
                await self._ack(n, ws, req_id)
            return
        if not self.ack_frames:
            return
        if self._failures.get(cmd):
            await self._ack(n, ws, req_id, self._failures[cmd].pop(0))
            return
        handler = {
            "aibot_respond_msg": self._respond,
            "aibot_respond_welcome_msg": self._welcome,
            "aibot_send_msg": self._send_msg,
            "aibot_upload_media_init": self._upload_init,
            "aibot_upload_media_chunk": self._upload_chunk,
            "aibot_upload_media_finish": self._upload_finish,
        }.get(cmd)
        if handler is None:
            await self._ack(n, ws, req_id, 40008)
            return
        errcode, reply = handler(frame)
        await self._ack(n, ws, req_id, errcode, reply)

    def _respond(self, frame: Frame) -> tuple[int, dict[str, Any] | None]:
        callback = self._callbacks.get(frame.req_id)
        if callback is None or callback.kind != "msg":
            return 846605, None
        inner = frame.body.get("stream") or {}
        content = str(inner.get("content") or "")
        if frame.body.get("msgtype") != "stream" or not inner.get("id"):
            return 40008, None
        if len(content.encode()) > CONTENT_LIMIT:
            return 40058, None
        key = (frame.req_id, str(inner["id"]))
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = Stream(frame.req_id, key[1], frame.at)
            stream.feedback_id = (inner.get("feedback") or {}).get("id")
        if stream.finished:
            self.late_frames.append(frame)
            return 846608, None
        if frame.at - stream.first_at > self.stream_ttl:
            return 846608, None
        stream.contents.append(content)
        stream.finished = bool(inner.get("finish"))
        return 0, None

    def _welcome(self, frame: Frame) -> tuple[int, dict[str, Any] | None]:
        callback = self._callbacks.get(frame.req_id)
        if callback is None or callback.kind != "enter_chat" or frame.at - callback.at > 5.0:
            return 846605, None
        return 0, None

    def _send_msg(self, frame: Frame) -> tuple[int, dict[str, Any] | None]:
        body = frame.body
        if body.get("chatid") not in self._chats:
            return 93006, None
        msgtype = body.get("msgtype")
        if msgtype == "markdown":
            content = str((body.get("markdown") or {}).get("content") or "")
            if not content.strip() or len(content.encode()) > CONTENT_LIMIT:
                return 40058, None
        elif msgtype in ("image", "file", "voice", "video"):
            if (body.get(msgtype) or {}).get("media_id") not in self.media:
                return 40007, None
        else:
            return 40008, None
        self.sent.append(body)
        return 0, None

    def _upload_init(self, frame: Frame) -> tuple[int, dict[str, Any] | None]:
        body = frame.body
        total = int(body.get("total_chunks") or 0)
        if not 1 <= total <= 100 or body.get("type") not in ("image", "file", "voice", "video"):
            return 40004, None
        upload_id = secrets.token_hex(8)
        self._uploads[upload_id] = {**body, "chunks": {}}
        return 0, {"upload_id": upload_id}

    def _upload_chunk(self, frame: Frame) -> tuple[int, dict[str, Any] | None]:
        upload = self._uploads.get(str(frame.body.get("upload_id")))
        index = frame.body.get("chunk_index")
        if upload is None or not isinstance(index, int) or not 0 <= index < upload["total_chunks"]:
            return 40004, None
        data = base64.b64decode(str(frame.body.get("base64_data") or ""))
        if len(data) > CHUNK_LIMIT:
            return 40004, None
        upload["chunks"][index] = data
        return 0, None

    def _upload_finish(self, frame: Frame) -> tuple[int, dict[str, Any] | None]:
        upload = self._uploads.pop(str(frame.body.get("upload_id")), None)
        if upload is None or len(upload["chunks"]) != upload["total_chunks"]:
            return 40004, None
        data = b"".join(upload["chunks"][i] for i in range(upload["total_chunks"]))
        if len(data) != upload["total_size"] or hashlib.md5(data).hexdigest() != upload.get("md5", ""):
            return 40004, None
        media_id = f"MEDIA{secrets.token_hex(6)}"
        self.media[media_id] = data
        return 0, {"type": upload["type"], "media_id": media_id, "created_at": int(time.time())}
