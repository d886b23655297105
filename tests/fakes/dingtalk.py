"""FakeDingTalk: a stand-in for DingTalk on 127.0.0.1 — the Stream gateway and its WebSocket, OpenAPI, the legacy
oapi and sessionWebhooks — speaking the wire format of dingtalk-protocol.md, recording what it receives.

    async with FakeDingTalk({"ding-app-1": "secret-1"}) as ding:
        settings = …(credentials=[…], dingtalk_api_base=ding.base_url, dingtalk_oapi_base=ding.base_url)
        await ding.wait_connected("ding-app-1")
        msg_id = await ding.push(ding.message("你好", user="staff-1"))   # a CALLBACK frame; waits for its ACK
        await ding.wait_for(lambda: ding.replies(user="staff-1"))

Routes (one server for both bases):
- `POST /v1.0/gateway/connections/open` — clientId/clientSecret must be a configured pair (else, or while
  `auth_fail` is set, 401 `authFailed`); answers `{"endpoint": ws://…/connect, "ticket"}` (single use).
- `GET /connect?ticket=` — the WebSocket. `push`, `ping`, `disconnect`, `abort` (TCP cut, no close frame) and
  `close` (a clean close) act on the newest open connection of an app. With `close_on_connect` every new socket
  is closed cleanly at once; with `silent` nothing is ever sent (an idle watchdog must notice). ACKs land in
  `acks` (by messageId).
- `POST /v1.0/oauth2/accessToken` — `{"appKey","appSecret"}` → `{"accessToken","expireIn"}`, 400
  `invalidClientSecret` for a wrong pair.
- `POST /v1.0/robot/oToMessages/batchSend`, `/v1.0/robot/groupMessages/send` — token in
  `x-acs-dingtalk-access-token` (else 401); accepted messages land in `delivered`; `fail(path, status, body)`
  queues refusals (QpsLimit, permission denied …); `invalid_users` come back in `invalidStaffIdList`.
- `POST /v1.0/robot/messageFiles/download` → `downloadUrl` of `GET /files/{code}` (`add_file`).
- `POST /media/upload?access_token=` (multipart `type`, `media`) → `media_id`.
- `POST /v1.0/card/instances/createAndDeliver`, `PUT /v1.0/card/streaming` — AI cards (a known template,
  IM_GROUP/IM_ROBOT spaces, isFull updates ≤ 3,000 bytes) land in `cards`.
- `POST /robot/sendBySession?session=` — a message's sessionWebhook: `webhook_errors` (a list of errcodes) are
  answered first, in order (300001 expired, 130101 too fast); else the message lands in `delivered`.
Every request is recorded in `requests`, in order, with its arrival time.
"""

from __future__ import annotations

import itertools
import json
import secrets
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from aiohttp import WSMsgType, web

from tests.fakes.waiting import wait_until

MSG_IDS = itertools.count(1)
BOT_TOPIC = "/v1.0/im/bot/messages/get"
PRIVATE_SEND = "/v1.0/robot/oToMessages/batchSend"
GROUP_SEND = "/v1.0/robot/groupMessages/send"
DOWNLOAD = "/v1.0/robot/messageFiles/download"
UPLOAD = "/media/upload"
TOKEN = "/v1.0/oauth2/accessToken"
GATEWAY = "/v1.0/gateway/connections/open"
WEBHOOK = "/robot/sendBySession"
CARD_CREATE = "/v1.0/card/instances/createAndDeliver"
CARD_STREAM = "/v1.0/card/streaming"
CARD_MAX_BYTES = 3000
WEBHOOK_ERRORS = {300001: "session 不存在", 130101: "send too fast, exceed 20 times per minute"}


@dataclass
class Recorded:
    path: str
    at: float  # time.monotonic()
    json: Any
    query: dict[str, str]
    headers: dict[str, str]
    status: int = 0


@dataclass
class Delivered:
    """A message a user or group got: by `via` "webhook" or "api", from app `client_id`."""

    via: str
    client_id: str
    user: str  # the private chat's person ("" for a group)
    chat: str  # the group's conversationId ("" for a private chat)
    msgtype: str  # markdown | text | image
    text: str
    title: str = ""
    at_users: list[str] = field(default_factory=list)


@dataclass
class Card:
    """An AI card: where it was delivered, and every streaming update (content, isFinalize) in order."""

    out_track_id: str
    template: str
    space: str
    robot: str
    frames: list[tuple[str, bool]] = field(default_factory=list)  # (content, isFinalize)
    error: bool = False  # finished with isError

    @property
    def finished(self) -> bool:
        return bool(self.frames) and self.frames[-1][1]

    @property
    def text(self) -> str:
        return self.frames[-1][0] if self.frames else ""


@dataclass
class Connection:
    client_id: str
    ws: web.WebSocketResponse
    request: web.Request
    opened_at: float
    closed: bool = False
    closed_at: float = float("inf")  # when its handler saw it end


@dataclass
class _Session:
    client_id: str
    user: str
    chat: str


class FakeDingTalk:
    def __init__(self, apps: dict[str, str] | None = None) -> None:
        self.apps = dict(apps or {"ding-app-1": "ding-secret-1"})
        self.auth_fail = False
        self.close_on_connect = False
        self.silent = False
        self.opens: list[tuple[float, str, int]] = []  # (when, clientId, HTTP status)
        self.connections: list[Connection] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.requests: list[Recorded] = []
        self.delivered: list[Delivered] = []
        self.webhook_errors: list[int] = []
        self.invalid_users: set[str] = set()
        self.files: dict[str, tuple[bytes, str]] = {}
        self.uploads: dict[str, bytes] = {}
        self.cards: dict[str, Card] = {}
        self.templates: set[str] = {"tpl-ai-card.schema"}
        self._failures: dict[str, deque[tuple[int, dict[str, Any]]]] = {}
        self._tickets: dict[str, str] = {}
        self._tokens: dict[str, str] = {}
        self._sessions: dict[str, _Session] = {}
        self._runner: web.AppRunner | None = None
        self._port = 0
        app = web.Application()
        app.router.add_post(GATEWAY, self._open)
        app.router.add_get("/connect", self._ws)
        app.router.add_post(TOKEN, self._token)
        app.router.add_post(PRIVATE_SEND, self._send)
        app.router.add_post(GROUP_SEND, self._send)
        app.router.add_post(DOWNLOAD, self._download)
        app.router.add_get("/files/{code}", self._file)
        app.router.add_post(UPLOAD, self._upload)
        app.router.add_post(WEBHOOK, self._webhook)
        app.router.add_post(CARD_CREATE, self._card_create)
        app.router.add_put(CARD_STREAM, self._card_stream)
        self._app = app

    # --- lifecycle --------------------------------------------------------------------------------------
    async def start(self) -> FakeDingTalk:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = self._runner.addresses[0][1]
        return self

    async def close(self) -> None:
        for conn in self.connections:
            if not conn.closed:
                await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> FakeDingTalk:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self._port}"

    # --- building messages ------------------------------------------------------------------------------
    def message(
        self,
        text: str = "",
        *,
        user: str = "staff-1",
        nick: str = "张三",
        group: str | None = None,
        title: str = "测试群",
        msgtype: str = "text",
        content: dict[str, Any] | None = None,
        client_id: str | None = None,
        msg_id: str | None = None,
        webhook_ttl_ms: int = 5_400_000,
        staff: bool = True,
    ) -> dict[str, Any]:
        """A bot message as DingTalk sends it (§2), with a sessionWebhook that leads back to this fake."""
        client_id = client_id or next(iter(self.apps))
        session = secrets.token_hex(8)
        self._sessions[session] = _Session(client_id, "" if group else user, group or "")
        now = int(time.time() * 1000)
        data: dict[str, Any] = {
            "msgId": msg_id or f"msg{next(MSG_IDS)}AbC+/==", "msgtype": msgtype, "createAt": now,
            "conversationType": "2" if group else "1", "conversationId": group or f"cid-private-{user}==",
            "senderId": f"$:LWCP_v1:$sender-{user}", "senderStaffId": user if staff else "",
            "senderNick": nick, "senderCorpId": "ding-corp", "chatbotCorpId": "ding-corp", "isAdmin": False,
            "chatbotUserId": "$:LWCP_v1:$bot", "robotCode": client_id, "isInAtList": True,
            "sessionWebhook": f"{self.base_url}{WEBHOOK}?session={session}",
            "sessionWebhookExpiredTime": now + webhook_ttl_ms,
        }  # fmt: skip
        if group:
            data["conversationTitle"] = title
        if msgtype == "text":
            data["text"] = {"content": f" {text}" if group else text}  # a group's @ leaves a leading space
        if content is not None:
            data["content"] = content
        return data

    def add_file(self, code: str, data: bytes, content_type: str) -> None:
        self.files[code] = (data, content_type)

    # --- frames -----------------------------------------------------------------------------------------
    def live(self, client_id: str | None = None) -> Connection:
        client_id = client_id or next(iter(self.apps))
        for conn in reversed(self.connections):
            if conn.client_id == client_id and not conn.closed and not conn.ws.closed:
                return conn
        raise AssertionError(f"no open connection of {client_id}")

    def connected(self, client_id: str | None = None) -> bool:
        try:
            self.live(client_id)
        except AssertionError:
            return False
        return True

    async def wait_connected(self, client_id: str | None = None, timeout: float = 10.0, count: int = 1) -> Connection:
        cid = client_id or next(iter(self.apps))
        await self.wait_for(
            lambda: self.connected(cid) and sum(c.client_id == cid for c in self.connections) >= count,
            timeout, f"connection {count} of {cid}",
        )  # fmt: skip
        return self.live(cid)

    async def frame(self, kind: str, topic: str, data: Any, client_id: str | None = None) -> str:
        message_id = f"frame-{next(MSG_IDS)}"
        headers = {"appId": "app-1", "contentType": "application/json", "messageId": message_id,
                   "time": str(int(time.time() * 1000)), "topic": topic}  # fmt: skip
        frame = {"specVersion": "1.0", "type": kind, "headers": headers, "data": json.dumps(data)}
        await self.live(client_id).ws.send_str(json.dumps(frame))
        return message_id

    async def push(self, data: dict[str, Any], client_id: str | None = None, wait_ack: bool = True) -> str:
        """A bot message as a CALLBACK frame on the app's connection; with `wait_ack`, once it is ACKed."""
        message_id = await self.frame("CALLBACK", BOT_TOPIC, data, client_id or data.get("robotCode"))
        if wait_ack:
            await self.wait_for(lambda: message_id in self.acks, what=f"the ACK of {message_id}")
        return message_id

    async def ping(self, client_id: str | None = None) -> str:
        message_id = await self.frame("SYSTEM", "ping", {"opaque": "123-dsfs"}, client_id)
        await self.wait_for(lambda: message_id in self.acks, what="the ping's ACK")
        return message_id

    async def disconnect(self, client_id: str | None = None) -> None:
        await self.frame("SYSTEM", "disconnect", {"reason": "connection is expired"}, client_id)

    async def abort(self, client_id: str | None = None) -> None:
        """Cut the TCP connection without a close frame."""
        conn = self.live(client_id)
        conn.closed = True
        transport = conn.request.transport
        assert transport is not None
        transport.abort()

    async def close_socket(self, client_id: str | None = None) -> None:
        conn = self.live(client_id)
        conn.closed = True
        await conn.ws.close()

    # --- reading what happened --------------------------------------------------------------------------
    def requests_to(self, path: str) -> list[Recorded]:
        return [r for r in self.requests if r.path == path]

    def replies(self, *, user: str | None = None, chat: str | None = None) -> list[Delivered]:
        return [d for d in self.delivered if (user is None or d.user == user) and (chat is None or d.chat == chat)]

    def texts(self, *, user: str | None = None, chat: str | None = None) -> list[str]:
        return [d.text for d in self.replies(user=user, chat=chat)]

    def fail(self, path: str, status: int, body: dict[str, Any], times: int = 1) -> None:
        self._failures.setdefault(path, deque()).extend([(status, body)] * times)

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> None:
        await wait_until(predicate, timeout, what)

    # --- handlers ---------------------------------------------------------------------------------------
    async def _record(self, request: web.Request) -> Recorded:
        body = await request.read() if request.content_type == "application/json" else b""
        rec = Recorded(request.path, time.monotonic(), json.loads(body) if body else None, dict(request.query),
                       dict(request.headers))  # fmt: skip
        self.requests.append(rec)
        return rec

    def _answer(self, rec: Recorded, body: dict[str, Any], status: int = 200) -> web.Response:
        rec.status = status
        return web.json_response(body, status=status)

    def _failure(self, rec: Recorded) -> web.Response | None:
        queue = self._failures.get(rec.path)
        if queue:
            status, body = queue.popleft()
            return self._answer(rec, body, status)
        return None

    async def _open(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        body = rec.json or {}
        cid = str(body.get("clientId", ""))
        ok = not self.auth_fail and self.apps.get(cid) == body.get("clientSecret") and body.get("subscriptions")
        self.opens.append((time.monotonic(), cid, 200 if ok else 401))
        if not ok:
            return self._answer(rec, {"requestid": "r1", "code": "authFailed", "message": "鉴权失败"}, 401)
        ticket = secrets.token_urlsafe(16) + "+/="  # characters a client must URL-encode
        self._tickets[ticket] = cid
        return self._answer(rec, {"endpoint": f"ws://127.0.0.1:{self._port}/connect", "ticket": ticket})

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        cid = self._tickets.pop(request.query.get("ticket", ""), None)
        if cid is None:
            raise web.HTTPUnauthorized(text="bad ticket")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        conn = Connection(cid, ws, request, time.monotonic())
        self.connections.append(conn)
        if self.close_on_connect:
            conn.closed = True
            await ws.close()
            return ws
        async for msg in ws:
            if msg.type == WSMsgType.TEXT:
                frame = json.loads(msg.data)
                self.acks[frame["headers"]["messageId"]] = frame
        conn.closed, conn.closed_at = True, time.monotonic()
        return ws

    async def _token(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        body = rec.json or {}
        if (failed := self._failure(rec)) is not None:
            return failed
        if self.apps.get(str(body.get("appKey"))) != body.get("appSecret"):
            return self._answer(rec, {"code": "invalidClientSecret", "message": "应用秘钥不正确"}, 400)
        token = "tok-" + secrets.token_hex(8)
        self._tokens[token] = str(body["appKey"])
        return self._answer(rec, {"accessToken": token, "expireIn": 7200})

    def _app_of(self, rec: Recorded) -> str | None:
        token = rec.headers.get("x-acs-dingtalk-access-token") or rec.query.get("access_token", "")
        return self._tokens.get(token)

    async def _send(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if (app := self._app_of(rec)) is None:
            return self._answer(rec, {"code": "InvalidAuthentication", "message": "token invalid"}, 401)
        if (failed := self._failure(rec)) is not None:
            return failed
        body = rec.json or {}
        if body.get("robotCode") != app or not isinstance(body.get("msgParam"), str):
            return self._answer(rec, {"code": "invalidParameter", "message": "robotCode or msgParam"}, 400)
        param = json.loads(body["msgParam"])
        kind = {"sampleMarkdown": "markdown", "sampleText": "text", "sampleImageMsg": "image"}[body["msgKey"]]
        text = param.get("text") or param.get("content") or param.get("photoURL") or ""
        if rec.path == PRIVATE_SEND:
            users = list(body["userIds"])
            invalid = [u for u in users if u in self.invalid_users]
            for user in users:
                if user not in invalid:
                    self.delivered.append(Delivered("api", app, user, "", kind, text, param.get("title", "")))
            return self._answer(rec, {"processQueryKey": "q", "invalidStaffIdList": invalid,
                                      "flowControlledStaffIdList": []})  # fmt: skip
        self.delivered.append(Delivered("api", app, "", body["openConversationId"], kind, text, param.get("title", "")))
        return self._answer(rec, {"processQueryKey": "q"})

    async def _download(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if self._app_of(rec) is None:
            return self._answer(rec, {"code": "InvalidAuthentication", "message": "token invalid"}, 401)
        code = str((rec.json or {}).get("downloadCode"))
        if code not in self.files:
            return self._answer(rec, {"code": "invalidParameter.downloadCode", "message": "no such file"}, 400)
        return self._answer(rec, {"downloadUrl": f"{self.base_url}/files/{code}"})

    async def _file(self, request: web.Request) -> web.Response:
        await self._record(request)
        data, content_type = self.files[request.match_info["code"]]
        return web.Response(body=data, content_type=content_type)

    async def _upload(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if self._app_of(rec) is None:
            return self._answer(rec, {"errcode": 40014, "errmsg": "不合法的access_token"})
        form = await request.post()
        media = form.get("media")
        if form.get("type") != "image" or not isinstance(media, web.FileField):
            return self._answer(rec, {"errcode": 40004, "errmsg": "不合法的媒体文件类型"})
        media_id = f"@lA{secrets.token_hex(6)}"
        self.uploads[media_id] = media.file.read()
        return self._answer(rec, {"errcode": 0, "errmsg": "ok", "media_id": media_id, "type": "image"})

    async def _card_create(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if (app := self._app_of(rec)) is None:
            return self._answer(rec, {"code": "InvalidAuthentication", "message": "token invalid"}, 401)
        if (failed := self._failure(rec)) is not None:
            return failed
        body = rec.json or {}
        if body.get("cardTemplateId") not in self.templates:
            return self._answer(rec, {"code": "param.cardTemplateId", "message": "template not found"}, 400)
        space = str(body.get("openSpaceId", ""))
        robot = str((body.get("imGroupOpenDeliverModel") or {}).get("robotCode", app))
        good = (space.startswith("dtv1.card//IM_GROUP.") and "imGroupOpenDeliverModel" in body) or (
            space.startswith("dtv1.card//IM_ROBOT.") and (body.get("imRobotOpenDeliverModel") or {}).get("spaceType")
            == "IM_ROBOT")  # fmt: skip
        kind = space.rsplit("//", maxsplit=1)[-1].split(".", maxsplit=1)[0]
        error = "" if good else "spaceId is illegal"
        result = {"spaceType": kind, "spaceId": space, "success": good, "errorMsg": error}
        if good:
            track = str(body["outTrackId"])
            self.cards[track] = Card(track, str(body["cardTemplateId"]), space, robot)
        return self._answer(rec, {"success": True, "result": {"outTrackId": body.get("outTrackId"),
                                                              "deliverResults": [result]}})  # fmt: skip

    async def _card_stream(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        if self._app_of(rec) is None:
            return self._answer(rec, {"code": "InvalidAuthentication", "message": "token invalid"}, 401)
        if (failed := self._failure(rec)) is not None:
            return failed
        body = rec.json or {}
        card = self.cards.get(str(body.get("outTrackId")))
        if card is None:
            return self._answer(rec, {"code": "param.stream.outTrackId", "message": "card is not exist"}, 400)
        if body.get("isFull") is not True or not body.get("guid") or body.get("key") != "content":
            return self._answer(rec, {"code": "param.stream.isFull", "message": "bad streaming parameters"}, 400)
        if len(str(body.get("content", "")).encode()) > CARD_MAX_BYTES:
            return self._answer(rec, {"code": "param.stream.content", "message": "content is too large"}, 400)
        card.frames.append((str(body.get("content", "")), bool(body.get("isFinalize"))))
        card.error = card.error or bool(body.get("isError"))
        return self._answer(rec, {"success": True, "result": True})

    async def _webhook(self, request: web.Request) -> web.Response:
        rec = await self._record(request)
        session = self._sessions.get(request.query.get("session", ""))
        if self.webhook_errors:
            errcode = self.webhook_errors.pop(0)
            return self._answer(rec, {"errcode": errcode, "errmsg": WEBHOOK_ERRORS.get(errcode, "error")})
        if session is None:
            return self._answer(rec, {"errcode": 300001, "errmsg": "session 不存在"})
        body = rec.json or {}
        kind = str(body.get("msgtype"))
        part = body.get(kind) or {}
        text = part.get("text") or part.get("content") or ""
        at = list((body.get("at") or {}).get("atUserIds") or [])
        self.delivered.append(Delivered("webhook", session.client_id, session.user, session.chat, kind, text,
                                        part.get("title", ""), at))  # fmt: skip
        return self._answer(rec, {"errcode": 0, "errmsg": "ok"})
