"""FakeModel: an OpenAI-compatible chat-completions server on 127.0.0.1, for tests over real HTTP.

    async with FakeModel() as fake:
        settings = make_settings(base_url=fake.base_url)      # "http://127.0.0.1:PORT", no /v1
        fake.set_reply("hello")                                # or a function of the ModelRequest
        ...
        [request] = await fake.wait_for_requests(1)
        assert request.last_user_text == "hi"

Routes: POST `<any prefix>/chat/completions` — so `/v1/chat/completions`,
`/compatible-mode/v1/chat/completions` and Azure's `/openai/deployments/{deployment}/chat/completions` all
answer — and GET `<any prefix>/models`. Every request that reaches the server is recorded in `requests`,
failed ones included.

Each request is handled in this order: record → `down()` (503) → `expected_key` (401) → `fail()` (scripted,
in order) → `fail_when()` rules (first match) → `set_delay()` → the reply, as JSON or, with `"stream": true`,
as server-sent events (`set_stream()`).

Answers have OpenAI's shape. `usage` counts characters, not tokens: `prompt_tokens` is the total length of the
messages' contents and `completion_tokens` the length of the reply (`include_usage = False` leaves it out).

Error answers carry `retry-after-ms` (`retry_after_ms`, default 1 ms), which the openai SDK honours instead of
its own backoff (0.5 s, 1 s, 2 s … less up to 25 % jitter), so retry tests stay fast; `retry_after_ms = None`
exercises the SDK's real backoff. The 401 body echoes the key it was given, as a careless server might: a test
can then check that the client never lets an error body reach its own messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

__all__ = ["FakeModel", "ModelRequest", "context_length_body", "error_body"]

Reply = Callable[["ModelRequest"], "str | Awaitable[str]"]


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


@dataclass
class ModelRequest:
    """One request as the fake received it. Header names are lower-case; `at` is `time.monotonic()`."""

    path: str
    headers: dict[str, str]
    query: dict[str, str]
    json: dict[str, Any]
    at: float

    @property
    def messages(self) -> list[dict[str, Any]]:
        """The request's `messages` (empty when absent)."""
        messages = self.json.get("messages")
        return [m for m in messages if isinstance(m, dict)] if isinstance(messages, list) else []

    @property
    def last_user_text(self) -> str:
        """The content of the last `user` message ("" when there is none)."""
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


@dataclass
class _Rule:
    predicate: Callable[[ModelRequest], bool]
    status: int
    body: dict[str, Any] | None


@dataclass
class FakeModel:
    """An OpenAI-compatible server on 127.0.0.1 (a free port). Behaviour can be changed while it runs."""

    reply: Reply = _echo
    expected_key: str | None = None
    include_usage: bool = True
    retry_after_ms: float | None = 1.0
    requests: list[ModelRequest] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._delay = 0.0
        self._chunk_chars = 20
        self._chunk_delay = 0.0
        self._down = False
        self._failures: deque[tuple[int, dict[str, Any] | None]] = deque()
        self._rules: list[_Rule] = []
        self._ids = itertools.count(1)
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
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

    def set_stream(self, chunk_chars: int = 20, chunk_delay: float = 0.0) -> None:
        """Streamed answers: pieces of `chunk_chars` characters, `chunk_delay` seconds apart."""
        if chunk_chars < 1:
            raise ValueError("chunk_chars must be at least 1")
        self._chunk_chars, self._chunk_delay = chunk_chars, chunk_delay

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

        if http.method == "GET" and request.path.rstrip("/").endswith("/models"):
            models = [{"id": "fake-model", "object": "model", "created": 0, "owned_by": "fake"}]
            return web.json_response({"object": "list", "data": models})
        if http.method != "POST" or not request.path.rstrip("/").endswith("/chat/completions"):
            return self._error(404, error_body(f"Unknown route {http.method} {request.path}", type="not_found"))
        if payload is None or not request.messages:
            return self._error(400, error_body("'messages' is required", type="invalid_request_error"))

        if not await self._sleep(self._delay):
            return self._error(503, error_body("FakeModel is closing."))
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
            for i in range(0, len(text), n):
                if i and not await self._sleep(self._chunk_delay):
                    return response
                await response.write(chunk({"content": text[i : i + n]}, None))
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
