"""FakeModel: an OpenAI-compatible server on 127.0.0.1 (chat, images, transcriptions), for tests over real HTTP.

    async with FakeModel() as fake:
        settings = make_settings(base_url=fake.base_url)      # "http://127.0.0.1:PORT", no /v1
        fake.set_reply("hello")                                # or a function of the ModelRequest
        ...
        [request] = await fake.wait_for_requests(1)
        assert request.last_user_text == "hi"

Routes, each under any prefix — so `/v1/…`, `/compatible-mode/v1/…` and Azure's
`/openai/deployments/{deployment}/…` all answer (`ModelRequest.kind` / `.deployment` tell them apart):

- POST `…/chat/completions` (kind "chat"): the reply (`set_reply`), as JSON or, with `"stream": true`, as
  server-sent events (`set_stream`). Vision requests are recorded as sent: `messages` keeps the content parts,
  `images` lists the data URLs and `last_user_text` joins the text parts.
- POST `…/images/generations` (kind "image"): always base64 — `FakeModel.PNG` unless `set_image()` says
  otherwise — with a `revised_prompt`.
- POST `…/audio/transcriptions` (kind "transcription", multipart): `{"text": …}` (`set_transcript`). The form
  fields land in `ModelRequest.json`, the uploaded file in `ModelRequest.files` / `.upload`.
- GET `…/models` (kind "models").

Every request that reaches the server is recorded in `requests`, failed ones included. Each is handled in
this order: record → `down()` (503) → `expected_key` (401) → `fail()` (scripted, in order, whatever the route)
→ `fail_when()` rules (first match) → `set_delay()` → `stall()` → the answer.

Answers have OpenAI's shape. `usage` counts characters, not tokens: `prompt_tokens` is the total length of the
messages' contents and `completion_tokens` the length of the reply (`include_usage = False` leaves it out).

Error answers carry `retry-after-ms` (`retry_after_ms`, default 1 ms), which the openai SDK honours instead of
its own backoff (0.5 s, 1 s, 2 s … less up to 25 % jitter), so retry tests stay fast; `retry_after_ms = None`
exercises the SDK's real backoff. The 401 body echoes the key it was given, as a careless server might: a test
can then check that the client never lets an error body reach its own messages.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import inspect
import itertools
import json
import struct
import time
import zlib
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from aiohttp import web

__all__ = [
    "FakeModel",
    "ModelRequest",
    "UploadedFile",
    "content_policy_body",
    "context_length_body",
    "error_body",
    "tiny_png",
]

Reply = Callable[["ModelRequest"], "str | Awaitable[str]"]
RevisedPrompt = Callable[["ModelRequest"], "str | None"]
_KINDS = {
    "chat/completions": "chat",
    "images/generations": "image",
    "audio/transcriptions": "transcription",
    "models": "models",
}


def tiny_png(width: int = 2, height: int = 2) -> bytes:
    """A valid RGB PNG (a red/green/blue/white pattern), built with zlib and struct only."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    colours = [b"\xff\x00\x00", b"\x00\xff\x00", b"\x00\x00\xff", b"\xff\xff\xff"]
    rows = b"".join(
        b"\x00" + b"".join(colours[(x + 2 * y) % 4] for x in range(width)) for y in range(height)
    )  # filter byte 0, then RGB pixels
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)  # 8-bit RGB, no interlace
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def error_body(message: str, *, type: str = "server_error", code: str | None = None) -> dict[str, Any]:
    """An error body in OpenAI's shape: {"error": {"message", "type", "param", "code"}}."""
    return {"error": {"message": message, "type": type, "param": None, "code": code}}


def context_length_body(limit: int = 4096) -> dict[str, Any]:
    """OpenAI's 400 body for a context that is too long (code `context_length_exceeded`)."""
    body = error_body(
        f"This model's maximum context length is {limit} tokens. Please reduce the length of the messages.",
        type="invalid_request_error",
        code="context_length_exceeded",
    )
    body["error"]["param"] = "messages"
    return body


def content_policy_body() -> dict[str, Any]:
    """OpenAI's 400 body for an image prompt its safety system refuses (code `content_policy_violation`)."""
    return error_body(
        "Your request was rejected as a result of our safety system.",
        type="invalid_request_error",
        code="content_policy_violation",
    )


@dataclass(frozen=True)
class UploadedFile:
    """One file of a multipart request: its form field, file name, MIME type and bytes."""

    field: str
    filename: str
    content_type: str
    data: bytes

    @property
    def size(self) -> int:
        """The file's length in bytes."""
        return len(self.data)


@dataclass
class ModelRequest:
    """One request as the fake received it. Header names are lower-case; `at` is `time.monotonic()`.

    `json` is the JSON body, or the text fields of a multipart form; `files` are a form's uploaded files.
    """

    path: str
    headers: dict[str, str]
    query: dict[str, str]
    json: dict[str, Any]
    at: float
    files: list[UploadedFile] = field(default_factory=list)

    @property
    def kind(self) -> str:
        """The route: "chat", "image", "transcription", "models", or "other"."""
        path = self.path.rstrip("/")
        return next((kind for suffix, kind in _KINDS.items() if path.endswith("/" + suffix)), "other")

    @property
    def deployment(self) -> str | None:
        """The Azure deployment in the path (`/openai/deployments/{deployment}/…`), else None."""
        parts = self.path.split("/")
        return parts[parts.index("deployments") + 1] if "deployments" in parts[:-2] else None

    @property
    def upload(self) -> UploadedFile | None:
        """The first uploaded file (a transcription's audio), or None."""
        return self.files[0] if self.files else None

    @property
    def images(self) -> list[str]:
        """The URLs (data URLs, for the daemon) of every `image_url` content part, in message order."""
        urls: list[str] = []
        for message in self.messages:
            content = message.get("content")
            for part in content if isinstance(content, list) else []:
                image = part.get("image_url") if isinstance(part, dict) and part.get("type") == "image_url" else None
                if isinstance(image, dict) and isinstance(image.get("url"), str):
                    urls.append(image["url"])
        return urls

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's `messages` (empty when absent)."""
        messages = self.json.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def last_user_text(self) -> str:
        """The text of the last `user` message: its content, or its text parts joined ("" when there is none)."""
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _text(message.get("content"))
        return ""

    @property
    def total_chars(self) -> int:
        """Total length of all messages' contents — handy in `fail_when` predicates."""
        return sum(len(_text(m.get("content"))) for m in self.messages)


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}, ...]
        return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""


def _echo(request: ModelRequest) -> str:
    return f"echo: {request.last_user_text}"


def _revised(request: ModelRequest) -> str:
    return f"revised: {request.json.get('prompt', '')}"


@dataclass
class _Rule:
    predicate: Callable[[ModelRequest], bool]
    status: int
    body: dict[str, Any] | None


@dataclass
class FakeModel:
    """An OpenAI-compatible server on 127.0.0.1 (a free port). Behaviour can be changed while it runs."""

    PNG: ClassVar[bytes] = tiny_png()
    """The image `images/generations` answers with by default: a valid 2×2 PNG."""

    reply: Reply = _echo
    expected_key: str | None = None
    include_usage: bool = True
    retry_after_ms: float | None = 1.0
    requests: list[ModelRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._delay = 0.0
        self._chunk_chars = 20
        self._chunk_delay = 0.0
        self._fail_after: int | None = None
        self._stall: Literal["headers", "body"] | None = None
        self._image = self.PNG
        self._revised: RevisedPrompt = _revised
        self._transcript = "fake transcript"
        self._down = False
        self._failures: deque[tuple[int, dict[str, Any] | None]] = deque()
        self._rules: list[_Rule] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None
        self.in_flight = 0  # requests being answered now
        self.peak_in_flight = 0  # the most ever answered at once

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application(client_max_size=64 * 1024 * 1024)  # audio uploads and inline images are large
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def close(self) -> None:
        """Stop listening; requests still waiting on a delay end at once."""
        self._closing.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeModel:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` — no `/v1`: the daemon appends it to a bare host."""
        if self._port is None:
            raise RuntimeError("FakeModel is not started")
        return f"http://127.0.0.1:{self._port}"

    # --- behaviour -----------------------------------------------------------------------------------
    def set_reply(self, reply: Reply | str) -> None:
        """Answer with this text, or with what `reply(request)` returns (a str or an awaitable of one)."""
        if isinstance(reply, str):
            text = reply

            def fixed(_request: ModelRequest) -> str:
                return text

            self.reply = fixed
        else:
            self.reply = reply

    def set_delay(self, seconds: float) -> None:
        """Wait this long before every answer (other requests are served meanwhile)."""
        self._delay = seconds

    def set_stream(self, chunk_chars: int = 20, chunk_delay: float = 0.0, *, fail_after: int | None = None) -> None:
        """Streamed answers: pieces of `chunk_chars` characters, `chunk_delay` seconds apart.

        With `fail_after`, every stream breaks after that many text pieces: the connection is cut without
        a finish reason, usage or `[DONE]` (an incomplete chunked body, as when a proxy drops it).
        """
        if chunk_chars < 1:
            raise ValueError("chunk_chars must be at least 1")
        if fail_after is not None and fail_after < 0:
            raise ValueError("fail_after must not be negative")
        self._chunk_chars, self._chunk_delay, self._fail_after = chunk_chars, chunk_delay, fail_after

    def stall(self, before: Literal["headers", "body"] | None = "headers") -> None:
        """Accept requests and never answer them, until `close()` (a model that hangs): with "headers" nothing is
        sent at all; with "body" the status line and headers of a 200 go out (an event stream when streaming
        was asked for), then nothing. None (or `reset()`): answer again — requests already stalled stay so."""
        self._stall = before

    def set_image(self, data: bytes | None = None, *, revised_prompt: str | RevisedPrompt | None = "") -> None:
        """Generated images: `data` (default `PNG`) and a `revised_prompt` — a text, None for none, or a function
        of the request; "" (the default) keeps "revised: <prompt>"."""
        self._image = self.PNG if data is None else data
        if revised_prompt == "":
            self._revised = _revised
        elif callable(revised_prompt):
            self._revised = revised_prompt
        else:
            fixed = revised_prompt
            self._revised = lambda _request: fixed

    def set_transcript(self, text: str) -> None:
        """The text every transcription answers with."""
        self._transcript = text

    def fail(self, status: int = 500, *, times: int = 1, body: dict[str, Any] | None = None) -> None:
        """Answer the next `times` requests with `status` (and `body`, default an OpenAI-shaped error)."""
        self._failures.extend([(status, body)] * times)

    def fail_when(
        self, predicate: Callable[[ModelRequest], bool], status: int, body: dict[str, Any] | None = None
    ) -> None:
        """Answer every request matching `predicate` with `status`, until `reset()`."""
        self._rules.append(_Rule(predicate, status, body))

    def down(self) -> None:
        """Answer 503 to everything until `up()`."""
        self._down = True

    def up(self) -> None:
        """Answer normally again after `down()`."""
        self._down = False

    def reset(self) -> None:
        """Back to the defaults: echo, no delay, no failures, not down; recorded requests are forgotten."""
        self.reply, self.expected_key, self.include_usage, self.retry_after_ms = _echo, None, True, 1.0
        self._delay, self._chunk_chars, self._chunk_delay, self._down = 0.0, 20, 0.0, False
        self._fail_after, self._image, self._revised, self._transcript = None, self.PNG, _revised, "fake transcript"
        self._stall = None
        self._failures.clear()
        self._rules.clear()
        self.requests.clear()

    async def wait_for_requests(
        self,
        count: int,
        timeout: float = 10.0,
    ) -> list[ModelRequest]:
        """Wait until at least `count` requests arrived; all recorded so far. AssertionError on timeout."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: len(self.requests) >= count), timeout)
            except TimeoutError:
                raise AssertionError(
                    f"FakeModel: expected {count} requests within {timeout} s, got {len(self.requests)}"
                ) from None
            return list(self.requests)

    # --- serving -------------------------------------------------------------------------------------
    async def _handle(self, http: web.Request) -> web.StreamResponse:
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            return await self._serve(http)
        finally:
            self.in_flight -= 1

    async def _serve(self, http: web.Request) -> web.StreamResponse:
        files: list[UploadedFile] = []
        payload: Any
        if http.content_type.startswith("multipart/"):
            payload = {}
            for name, value in (await http.post()).items():
                if isinstance(value, web.FileField):
                    files.append(UploadedFile(name, value.filename, value.content_type, value.file.read()))
                else:
                    payload[name] = value
        else:
            try:
                payload = await http.json() if http.can_read_body else {}
            except ValueError:
                payload = None
        request = ModelRequest(
            path=http.path,
            headers={k.lower(): v for k, v in http.headers.items()},
            query=dict(http.query),
            json=payload if isinstance(payload, dict) else {},
            at=time.monotonic(),
            files=files,
        )
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

        if self._down:
            return self._error(503, error_body("The server is temporarily down (FakeModel.down)."))
        if self.expected_key is not None and not self._authorized(request):
            given = request.headers.get("authorization") or request.headers.get("api-key", "")
            denied = error_body(f"Incorrect API key provided: {given}", type="invalid_request_error")
            denied["error"]["code"] = "invalid_api_key"
            return self._error(401, denied)
        if self._failures:
            status, body = self._failures.popleft()
            return self._error(status, body)
        for rule in self._rules:
            if rule.predicate(request):
                return self._error(rule.status, rule.body)

        if http.method == "GET" and request.kind == "models":
            models = [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]
            return web.json_response({"object": "list", "data": models})
        if http.method != "POST" or request.kind not in ("chat", "image", "transcription"):
            return self._error(404, error_body(f"Unknown route {http.method} {request.path}", type="not_found"))
        required, present = {
            "chat": ("messages", bool(request.messages)),
            "image": ("prompt", bool(request.json.get("prompt"))),
            "transcription": ("file", request.upload is not None),
        }[request.kind]
        if payload is None or not present:
            return self._error(400, error_body(f"'{required}' is required", type="invalid_request_error"))

        if not await self._sleep(self._delay):
            return self._error(503, error_body("FakeModel is closing."))
        if self._stall is not None:
            return await self._hang(http, request, self._stall)
        if request.kind == "image":
            return self._image_response(request)
        if request.kind == "transcription":
            return self._transcription_response(request)
        text = self.reply(request)
        if inspect.isawaitable(text):
            text = await text
        if request.json.get("stream"):
            return await self._stream(http, request, text)
        return web.json_response(
            {
                **self._envelope(request, "chat.completion"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
                **({"usage": self._usage(request, text)} if self.include_usage else {}),
            }
        )

    async def _stream(self, http: web.Request, request: ModelRequest, text: str) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(http)
        envelope = self._envelope(request, "chat.completion.chunk")

        def chunk(delta: dict[str, Any], finish: str | None) -> bytes:
            choice = {"index": 0, "delta": delta, "finish_reason": finish}
            return f"data: {json.dumps({**envelope, 'choices': [choice]}, ensure_ascii=False)}\n\n".encode()

        n = self._chunk_chars
        try:
            await response.write(chunk({"role": "assistant", "content": ""}, None))
            for sent, i in enumerate(range(0, len(text), n)):
                if sent == self._fail_after:
                    return self._cut(http, response)
                if i and not await self._sleep(self._chunk_delay):
                    return response
                await response.write(chunk({"content": text[i : i + n]}, None))
            if self._fail_after is not None:  # the answer had no more than `fail_after` pieces
                return self._cut(http, response)
            await response.write(chunk({}, "stop"))
            options = request.json.get("stream_options")
            if self.include_usage and isinstance(options, dict) and options.get("include_usage"):
                usage = {**envelope, "choices": [], "usage": self._usage(request, text)}
                await response.write(f"data: {json.dumps(usage, ensure_ascii=False)}\n\n".encode())
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
        except ConnectionError:
            pass  # the client went away mid-stream
        return response

    async def _hang(self, http: web.Request, request: ModelRequest, before: str) -> web.StreamResponse:
        """Never answer: send nothing, or only a 200's status line and headers; wait for `close()`."""
        response = web.StreamResponse()
        if before == "body":
            streamed = bool(request.json.get("stream"))
            response.content_type = "text/event-stream" if streamed else "application/json"
            await response.prepare(http)  # a StreamResponse sends its headers at once
        await self._closing.wait()
        if http.transport is not None:
            http.transport.abort()
        return response

    @staticmethod
    def _cut(http: web.Request, response: web.StreamResponse) -> web.StreamResponse:
        """Drop the connection mid-body: the client sees an incomplete chunked response."""
        if http.transport is not None:
            http.transport.abort()
        return response

    def _image_response(self, request: ModelRequest) -> web.Response:
        image = {"b64_json": base64.b64encode(self._image).decode("ascii")}
        revised = self._revised(request)
        if revised is not None:
            image["revised_prompt"] = revised
        return web.json_response({"created": int(time.time()), "data": [image]})

    def _transcription_response(self, request: ModelRequest) -> web.Response:
        if request.json.get("response_format") in ("text", "srt", "vtt"):
            return web.Response(text=self._transcript, content_type="text/plain")
        return web.json_response({"text": self._transcript})

    def _authorized(self, request: ModelRequest) -> bool:
        key = self.expected_key
        return request.headers.get("authorization") == f"Bearer {key}" or request.headers.get("api-key") == key

    def _envelope(self, request: ModelRequest, kind: str) -> dict[str, Any]:
        model = request.json.get("model")
        return {
            "id": f"chatcmpl-fake{next(self._ids)}",
            "object": kind,
            "created": int(time.time()),
            "model": model if isinstance(model, str) and model else "fake-model",
        }

    @staticmethod
    def _usage(request: ModelRequest, text: str) -> dict[str, int]:
        prompt, completion = request.total_chars, len(text)
        return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}

    def _error(self, status: int, body: dict[str, Any] | None) -> web.Response:
        headers = {} if self.retry_after_ms is None else {"retry-after-ms": str(self.retry_after_ms)}
        if body is None:
            body = error_body(f"FakeModel scripted failure (HTTP {status})")
        return web.json_response(body, status=status, headers=headers)

    async def _sleep(self, seconds: float) -> bool:
        """Sleep, cut short by `close()`; False when closing."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), seconds)
        return not self._closing.is_set()
