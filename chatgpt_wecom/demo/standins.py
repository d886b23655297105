"""The demo's stand-ins: a WeCom server API and an echo model, each a small aiohttp server on 127.0.0.1.

They are product code for `chatgpt-wecom demo`, not test fixtures: just enough of each API for the real
daemon to run against them, and answers that say plainly that this is a demo.

* :class:`DemoWeCom` — ``gettoken`` for the demo corp and secret, ``message/send`` (accepted, logged, and the
  last few kept in :attr:`DemoWeCom.sent`), ``media/upload`` and ``media/get``. Errors have WeCom's shape.
* :class:`EchoModel` — an OpenAI-compatible ``/v1/chat/completions``, whole or streamed, that repeats the
  question under a label (:data:`ECHO_LABEL`) so no one mistakes it for a real model.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import time
from abc import ABC, abstractmethod
from collections import OrderedDict, deque
from types import TracebackType
from typing import Any, Final, Self

from aiohttp import web

from chatgpt_wecom.demo import ECHO_MODEL

__all__ = ["ECHO_LABEL", "ECHO_MODEL", "DemoWeCom", "EchoModel", "echo_answer"]

log = logging.getLogger(__name__)

ECHO_LABEL: Final = "【演示模式·回声模型】"
ECHO_NOTE: Final = (
    "（这是演示用的回声模型，只会复述，不是真正的 AI。设置环境变量 APIKEY 后重新运行，即可接入真实模型。）"
)
TOKEN_TTL: Final = 7200
KEEP_SENT: Final = 50  # message/send bodies remembered
KEEP_MEDIA: Final = 20  # uploads remembered for media/get
MAX_MEDIA: Final = 20 << 20  # bytes, WeCom's largest limit (files)


class _Server(ABC):
    """An aiohttp application on 127.0.0.1 and a free port, as an async context manager."""

    def __init__(self) -> None:
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    @abstractmethod
    def make_app(self) -> web.Application:
        """The application this stand-in serves."""

    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening. Idempotent."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``."""
        if self._port is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return f"http://127.0.0.1:{self._port}"


# --- WeCom ---------------------------------------------------------------------------------------------
def _wecom_error(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": f"{errmsg} (demo WeCom stand-in)"})


class DemoWeCom(_Server):
    """The WeCom server API for one demo app. Tokens live in memory; nothing leaves this machine."""

    def __init__(self, *, corp_id: str, agent_id: int, secret: str) -> None:
        super().__init__()
        self.corp_id = corp_id
        self.agent_id = agent_id
        self.secret = secret
        self.sent: deque[dict[str, Any]] = deque(maxlen=KEEP_SENT)
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._media: OrderedDict[str, tuple[bytes, str]] = OrderedDict()

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_MEDIA + (1 << 16))
        app.router.add_get("/cgi-bin/gettoken", self._gettoken)
        app.router.add_post("/cgi-bin/message/send", self._send)
        app.router.add_post("/cgi-bin/media/upload", self._upload)
        app.router.add_get("/cgi-bin/media/get", self._get_media)
        return app

    def _token_error(self, request: web.Request) -> web.Response | None:
        token = request.query.get("access_token", "")
        if not token:
            return _wecom_error(41001, "access_token missing")
        if self._tokens.get(token, 0.0) < time.monotonic():
            return _wecom_error(40014 if token not in self._tokens else 42001, "invalid access_token")
        return None

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id:
            return _wecom_error(40013, "invalid corpid")
        if not secrets.compare_digest(request.query.get("corpsecret", ""), self.secret):
            return _wecom_error(40001, "invalid credential")
        token = secrets.token_urlsafe(32)
        now = time.monotonic()
        self._tokens = {t: exp for t, exp in self._tokens.items() if exp > now}
        self._tokens[token] = now + TOKEN_TTL
        return web.json_response({"errcode": 0, "errmsg": "ok", "access_token": token, "expires_in": TOKEN_TTL})

    async def _send(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        try:
            body = await request.json()
        except ValueError:
            return _wecom_error(47001, "data format error")
        if not isinstance(body, dict):
            return _wecom_error(47001, "data format error")
        if str(body.get("agentid")) != str(self.agent_id):
            return _wecom_error(301002, "not allow operate another agent with this accesstoken.")
        msgtype = str(body.get("msgtype"))
        payload = body.get(msgtype)
        if not body.get("touser") or not isinstance(payload, dict):
            return _wecom_error(44004, "empty content")
        self.sent.append(body)
        shown = payload.get("content") or payload.get("media_id") or ""
        log.info("demo WeCom: %s to %s: %.80s", msgtype, body["touser"], str(shown).replace("\n", " "))
        return web.json_response({"errcode": 0, "errmsg": "ok", "invaliduser": "", "msgid": secrets.token_hex(8)})

    async def _upload(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        kind = request.query.get("type", "")
        if kind not in ("image", "voice", "video", "file"):
            return _wecom_error(40004, "invalid media type")
        form = await request.post()
        media = form.get("media")
        if not isinstance(media, web.FileField):
            return _wecom_error(41005, "media data missing")
        data = media.file.read()
        if not data:
            return _wecom_error(44001, "empty media data")
        media_id = f"demo-{kind}-{secrets.token_urlsafe(12)}"
        self._media[media_id] = (data, media.content_type)
        while len(self._media) > KEEP_MEDIA:
            self._media.popitem(last=False)
        created = str(int(time.time()))
        return web.json_response(
            {"errcode": 0, "errmsg": "", "type": kind, "media_id": media_id, "created_at": created}
        )

    async def _get_media(self, request: web.Request) -> web.Response:
        if (error := self._token_error(request)) is not None:
            return error
        stored = self._media.get(request.query.get("media_id", ""))
        if stored is None:
            return _wecom_error(40007, "invalid media_id")
        return web.Response(body=stored[0], content_type=stored[1])


# --- the echo model ------------------------------------------------------------------------------------
def _text(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def echo_answer(messages: list[Any]) -> str:
    """The echo model's answer to `messages`: the last user message, labelled as a demo."""
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    said = _text(users[-1].get("content")).strip() if users else ""
    return f"{ECHO_LABEL}你说的是：{said or '（空）'}\n\n{ECHO_NOTE}"


class EchoModel(_Server):
    """An OpenAI-compatible chat model that repeats the question. Its base URL goes in `base_url`."""

    def __init__(self, pace: float = 0.0) -> None:
        super().__init__()
        self._ids = itertools.count(1)
        self._pace = pace  # seconds between two streamed pieces: a model's writing pace (the AI bot shows it)

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        return app

    async def _models(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {"object": "list", "data": [{"id": ECHO_MODEL, "object": "model", "owned_by": "demo"}]}
        )

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = await request.json()
        except ValueError:
            body = None
        messages = body.get("messages") if isinstance(body, dict) else None
        if not isinstance(body, dict) or not isinstance(messages, list) or not messages:
            error = {"message": "'messages' is required", "type": "invalid_request_error", "code": None}
            return web.json_response({"error": error}, status=400)
        text = echo_answer(messages)
        prompt = sum(len(_text(m.get("content"))) for m in messages if isinstance(m, dict))
        usage = {"prompt_tokens": prompt, "completion_tokens": len(text), "total_tokens": prompt + len(text)}
        envelope = {"id": f"chatcmpl-demo{next(self._ids)}", "created": int(time.time()), "model": ECHO_MODEL}
        if not body.get("stream"):
            choice = {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            return web.json_response({**envelope, "object": "chat.completion", "choices": [choice], "usage": usage})
        return await self._stream(request, body, envelope | {"object": "chat.completion.chunk"}, text, usage)

    async def _stream(
        self, request: web.Request, body: dict[str, Any], envelope: dict[str, Any], text: str, usage: dict[str, int]
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)

        def event(data: dict[str, Any]) -> bytes:
            return f"data: {json.dumps(envelope | data, ensure_ascii=False)}\n\n".encode()

        def chunk(delta: dict[str, str], finish: str | None = None) -> bytes:
            return event({"choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})

        try:
            await response.write(chunk({"role": "assistant", "content": ""}))
            for start in range(0, len(text), 16):
                await response.write(chunk({"content": text[start : start + 16]}))
                if self._pace:
                    await asyncio.sleep(self._pace)
            await response.write(chunk({}, "stop"))
            options = body.get("stream_options")
            if isinstance(options, dict) and options.get("include_usage"):
                await response.write(event({"choices": [], "usage": usage}))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the daemon hung up mid-answer
        return response
