"""FakeWeCom: a real HTTP stand-in for the WeCom server API, for tests that talk to it over loopback.

It listens on ``127.0.0.1`` on a free port and answers the way ``qyapi.weixin.qq.com`` does
(``wecom-protocol.md`` §6): HTTP 200 with a JSON ``errcode``, the access_token in the query string.

Endpoints (under ``base_url``, which includes the optional mount ``prefix``):

* ``GET /cgi-bin/gettoken?corpid=&corpsecret=`` — only the configured pair gets a token. A wrong corpid
  answers 40013, a wrong secret 40001 (as the real API does), with a real-looking errmsg that ends in
  ``from ip: 127.0.0.1, more info at …``. Tokens live ``token_ttl`` seconds.
* ``POST /cgi-bin/message/send`` — the token must be live (missing 41001, unknown 40014, expired 42001),
  ``agentid`` must match (else 301002), ``touser`` must name someone (else 81013; with ``users`` given, only
  those are valid and the others come back in ``invaliduser``). text/markdown content must be non-empty
  (44004) and at most 2048 UTF-8 bytes (45002); image/voice/video/file need a known media_id (40007); other
  msgtypes are 40008. Accepted bodies land in :attr:`FakeWeCom.sent` — what the users read. Like WeCom, it
  answers ok but drops (records in :attr:`dropped`, not in ``sent``): a body with ``enable_duplicate_check: 1``
  whose JSON equals one delivered within its ``duplicate_check_interval`` (counted in ``duplicates_dropped``),
  and a message to a member beyond ``member_rates`` (WeCom: 30 a minute, 1,000 an hour per member per app).
* ``POST /cgi-bin/media/upload?type=`` — multipart field ``media`` with a filename (else 41005), non-empty
  (44001), within the type's size limit (45001); ``type`` one of image/voice/video/file (40004).
* ``GET /cgi-bin/media/get?media_id=`` — the bytes of uploaded media or media added with :meth:`add_media`,
  or JSON 40007.
* ``GET /cgi-bin/agent/get?agentid=`` — the app's ``agentid`` and ``name`` (:attr:`agent_name`) for the configured
  agent_id; another number answers 60011 (the token's app may not read another app), a non-number 40056.

Scripting: :meth:`fail` queues failures for a path, :meth:`fail_when` fails the requests a predicate picks
until :meth:`clear_failures`, :meth:`set_delay` slows a path down, :meth:`lose_replies` processes requests and
then loses the answer (a proxy's 502 after forwarding, or a reply slower than the client waits), and
:meth:`expire_tokens` makes every issued token answer 42001. A request whose client hangs up during a delay is
recorded but not processed (its ``status`` stays None), like a timed-out call that never reached WeCom.

Waiting: :meth:`wait_for` / :meth:`wait_for_sent` wake up on every request the fake receives or answers
(and re-check every ``RECHECK`` seconds for predicates about other state), returning as soon as the
condition holds — no fixed sleeps.

Usage::

    async with FakeWeCom() as wecom:
        client = WeComClient(session, api_base=wecom.base_url, corp_id=wecom.corp_id,
                             agent_id=wecom.agent_id, secret=wecom.secret)
        ...
        await wecom.wait_for_sent(2, user="alice")
        assert wecom.texts_to("alice") == ["part 1", "part 2"]
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import secrets
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesHeaderParser
from types import TracebackType
from typing import Any, Final

from aiohttp import web

from tests.fakes.waiting import RECHECK, until

__all__ = ["FOREVER", "FakeWeCom", "RecordedRequest", "StoredMedia"]

FOREVER: Final = 1_000_000  # ``fail(..., times=FOREVER)``: a failure that never runs out
GETTOKEN: Final = "/cgi-bin/gettoken"
SEND: Final = "/cgi-bin/message/send"
UPLOAD: Final = "/cgi-bin/media/upload"
GET_MEDIA: Final = "/cgi-bin/media/get"
AGENT_GET: Final = "/cgi-bin/agent/get"
TEXT_LIMIT: Final = 2048  # bytes of UTF-8, for text and markdown content
MEMBER_RATES: Final = ((30, 60.0), (1000, 3600.0))  # (messages, seconds) per member per app; beyond: dropped
MEDIA_LIMITS: Final = {"image": 10 << 20, "voice": 2 << 20, "video": 10 << 20, "file": 20 << 20}

ERRMSGS: Final[dict[int, str]] = {
    -1: "system busy",
    40001: "invalid credential",
    40004: "invalid media type",
    40007: "invalid media_id",
    40008: "invalid message type",
    40013: "invalid corpid",
    40014: "invalid access_token",
    40091: "secret is invalid",
    41001: "access_token missing",
    41002: "corpid missing",
    41004: "corpsecret missing",
    41005: "media data missing",
    42001: "access_token expired",
    44001: "empty media data",
    44004: "empty content",
    45001: "media size out of limit",
    45002: "content size out of limit",
    45009: "api freq out of limit",
    45033: "api concurrent out of limit",
    47001: "data format error",
    48002: "api forbidden",
    40056: "invalid agentid",
    60011: "no privilege to access/modify contact/party/agent",
    60020: "not allow to access from your ip",
    81013: "user & party & tag all invalid",
    301002: "not allow operate another agent with this accesstoken.",
}


@dataclass
class RecordedRequest:
    """One request as the fake saw it. ``path`` excludes the mount prefix (``/cgi-bin/message/send``)."""

    method: str
    path: str
    query: dict[str, str]
    json: Any  # the parsed JSON body, or None
    body: bytes
    headers: dict[str, str]
    at: float  # time.monotonic() on arrival
    status: int | None = None  # HTTP status answered; None while in flight or when the client hung up
    errcode: int | None = None  # errcode of a JSON answer


@dataclass(frozen=True)
class StoredMedia:
    """Media the fake can serve from ``media/get`` (uploaded or added with :meth:`FakeWeCom.add_media`)."""

    data: bytes
    content_type: str
    filename: str
    kind: str = "file"


@dataclass
class _Failure:
    errcode: int | None
    status: int
    delay: float
    errmsg: str | None
    times: int  # answers left


@dataclass
class _LostReply:
    how: str  # "502": the answer becomes a proxy's 502; "slow": no answer until the client hangs up
    times: int


@dataclass
class _Part:
    filename: str | None
    content_type: str
    data: bytes = field(repr=False)


class FakeWeCom:
    """A WeCom server API on loopback. See the module docstring for what it checks and answers."""

    def __init__(
        self,
        *,
        corp_id: str = "wwfakecorp000001",
        secret: str = "fake-agent-secret-0123456789",
        agent_id: int = 1000002,
        prefix: str = "",
        token_ttl: float = 7200.0,
        users: Iterable[str] | None = None,
        member_rates: Iterable[tuple[int, float]] = MEMBER_RATES,
    ) -> None:
        self.corp_id = corp_id
        self.secret = secret
        self.agent_id = agent_id
        self.agent_name = "智能助手"
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.token_ttl = token_ttl
        self.users: set[str] | None = set(users) if users is not None else None
        self.requests: list[RecordedRequest] = []
        self.sent: list[dict[str, Any]] = []
        self.dropped: list[dict[str, Any]] = []  # answered ok, never shown: duplicates and over-rate messages
        self.duplicates_dropped = 0
        self.member_rates = tuple(member_rates)
        self._delivered: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, body) of every message in `sent`
        self.media: dict[str, StoredMedia] = {}
        self.token_fetches = 0  # gettoken requests received, scripted failures and errors included
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._failures: dict[str, collections.deque[_Failure]] = collections.defaultdict(collections.deque)
        self._rules: list[tuple[str, Callable[[RecordedRequest], bool], _Failure]] = []
        self._delays: dict[str, float] = {}
        self._lost: dict[str, collections.deque[_LostReply]] = collections.defaultdict(collections.deque)
        self._changed = asyncio.Condition()
        self._closing = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self._port: int | None = None

    # --- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        """Listen on 127.0.0.1 on a free port."""
        app = web.Application()
        app.router.add_route("*", self.prefix + "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self._port = self._runner.addresses[0][1]

    async def close(self) -> None:
        """Stop listening; requests sleeping in a scripted delay are woken and dropped. Idempotent."""
        self._closing.set()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def __aenter__(self) -> FakeWeCom:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT`` plus the prefix: what the client takes as ``api_base``."""
        if self._port is None:
            raise RuntimeError("FakeWeCom is not started")
        return f"http://127.0.0.1:{self._port}{self.prefix}"

    # --- scripting --------------------------------------------------------------------------------
    def fail(
        self,
        path: str,
        *,
        errcode: int | None = None,
        status: int = 200,
        times: int = 1,
        delay: float = 0.0,
        errmsg: str | None = None,
    ) -> None:
        """Answer the next ``times`` requests to ``path`` (e.g. ``"/cgi-bin/message/send"``) with a failure.

        With ``errcode``: a JSON error (default errmsg like the real one) with HTTP ``status``. Without it: a
        non-JSON body with HTTP ``status`` (500/502/… or, with 200, an HTML page as a broken proxy sends).
        ``delay`` seconds pass before answering. Failures queue up in order and come before any validation.
        """
        if times < 1:
            raise ValueError("times must be at least 1 (FOREVER for a permanent failure)")
        self._failures[path].append(_Failure(errcode, status, delay, errmsg, times))

    def fail_when(
        self,
        path: str,
        predicate: Callable[[RecordedRequest], bool],
        *,
        errcode: int | None = None,
        status: int = 200,
        delay: float = 0.0,
        errmsg: str | None = None,
    ) -> None:
        """Fail each request to ``path`` that ``predicate(request)`` picks, until :meth:`clear_failures`.

        The failure is shaped as in :meth:`fail`; queued :meth:`fail` answers are used up first.
        """
        self._rules.append((path, predicate, _Failure(errcode, status, delay, errmsg, FOREVER)))

    def clear_failures(self) -> None:
        """Forget queued :meth:`fail` answers and :meth:`fail_when` rules ("WeCom is back"); delays stay."""
        self._failures.clear()
        self._rules.clear()

    def lose_replies(self, path: str, *, times: int = 1, how: str = "502") -> None:
        """Process the next ``times`` requests to ``path`` as usual, then lose the answer: ``how="502"`` answers
        HTTP 502 instead (a proxy whose upstream reply was lost), ``"slow"`` holds the answer until the client
        hangs up (a reply slower than the client's timeout)."""
        if how not in ("502", "slow"):
            raise ValueError("how is '502' or 'slow'")
        self._lost[path].append(_LostReply(how, times))

    def set_delay(self, path: str, seconds: float) -> None:
        """Wait ``seconds`` before answering every request to ``path`` (0 removes the delay)."""
        self._delays[path] = seconds

    def expire_tokens(self) -> None:
        """Every token issued so far now answers 42001 (access_token expired)."""
        self._tokens = dict.fromkeys(self._tokens, float("-inf"))

    def add_media(self, media_id: str, data: bytes, content_type: str, filename: str | None = None) -> None:
        """Make ``media/get?media_id=…`` serve ``data`` (as media a user sent in a callback)."""
        self.media[media_id] = StoredMedia(data, content_type, filename or media_id)

    # --- inspection -------------------------------------------------------------------------------
    def requests_to(self, path: str) -> list[RecordedRequest]:
        """Recorded requests to ``path`` (without prefix), in arrival order."""
        return [r for r in self.requests if r.path == path]

    def messages_to(self, user: str) -> list[dict[str, Any]]:
        """Accepted message/send bodies addressed to ``user`` (directly, in an "a|b" list, or @all)."""
        return [m for m in self.sent if user in str(m.get("touser", "")).split("|") or m["touser"] == "@all"]

    def texts_to(self, user: str) -> list[str]:
        """The content of text and markdown messages to ``user``, in order."""
        return [m[m["msgtype"]]["content"] for m in self.messages_to(user) if m["msgtype"] in ("text", "markdown")]

    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        *,
        what: str = "",
    ) -> None:
        """Return as soon as ``predicate()`` holds.

        It is re-checked whenever a request arrives or is answered, and every ``RECHECK`` seconds besides, for
        predicates about state outside the fake (log records, the daemon's database). Raises AssertionError
        naming ``what`` and summarising the traffic when ``timeout`` passes first.
        """
        try:
            await until(self._changed, predicate, timeout)
        except TimeoutError:
            goal = what or getattr(predicate, "__name__", "the condition")
            raise AssertionError(f"FakeWeCom: no {goal} after {timeout:g} s\n{self.summary()}") from None

    async def wait_for_sent(
        self,
        count: int,
        user: str | None = None,
        timeout: float = 10.0,
    ) -> list[dict[str, Any]]:
        """Wait until at least ``count`` messages were accepted (for ``user`` if given); return them all."""

        def pick() -> list[dict[str, Any]]:
            return self.messages_to(user) if user is not None else list(self.sent)

        goal = f"{count} sent message(s)" + (f" to {user!r}" if user is not None else "")
        await self.wait_for(lambda: len(pick()) >= count, timeout, what=goal)
        return pick()

    def summary(self, last: int = 20) -> str:
        """The last requests and what was sent, for assertion messages."""
        lines = [f"{len(self.requests)} request(s), {len(self.sent)} sent, {self.token_fetches} gettoken"]
        for r in self.requests[-last:]:
            lines.append(f"  {r.method} {r.path} -> HTTP {r.status} errcode {r.errcode}")
        for m in self.sent[-last:]:
            content = m.get(m.get("msgtype", ""), {})
            lines.append(f"  sent to {m.get('touser')!r}: {m.get('msgtype')} {str(content)[:80]!r}")
        return "\n".join(lines)

    # --- the server -------------------------------------------------------------------------------
    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        path = request.path.removeprefix(self.prefix)
        query, headers = dict(request.query), dict(request.headers)
        rec = RecordedRequest(request.method, path, query, _json_or_none(body), body, headers, time.monotonic())
        self.requests.append(rec)
        self.token_fetches += path == GETTOKEN
        await self._notify()
        try:
            failure = self._next_failure(rec)
            delay = self._delays.get(path, 0.0) + (failure.delay if failure else 0.0)
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), delay)
                if self._closing.is_set():
                    return web.Response(status=503, text="shutting down")  # not processed
                if request.transport is None or request.transport.is_closing():
                    return web.Response(status=499)  # the client hung up: not processed
            response = self._failure(rec, failure, request) if failure else self._dispatch(rec, request)
            if (lost := self._next_lost(rec.path)) is not None:
                response = await self._lose(lost, request)
            rec.status = response.status
            return response
        finally:
            await self._notify()

    def _next_failure(self, rec: RecordedRequest) -> _Failure | None:
        queue = self._failures[rec.path]
        if queue:
            queue[0].times -= 1
            return queue[0] if queue[0].times > 0 else queue.popleft()
        return next((f for path, match, f in self._rules if path == rec.path and match(rec)), None)

    def _next_lost(self, path: str) -> _LostReply | None:
        queue = self._lost[path]
        if not queue:
            return None
        queue[0].times -= 1
        return queue[0] if queue[0].times > 0 else queue.popleft()

    async def _lose(self, lost: _LostReply, request: web.Request) -> web.Response:
        if lost.how == "slow":
            while request.transport is not None and not request.transport.is_closing() and not self._closing.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), RECHECK)
            return web.Response(status=499)
        return web.Response(status=502, text="<html><body>502 Bad Gateway</body></html>", content_type="text/html")

    async def _notify(self) -> None:
        async with self._changed:
            self._changed.notify_all()

    def _dispatch(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        routes = {GETTOKEN: ("GET", self._gettoken), SEND: ("POST", self._send)}
        routes |= {UPLOAD: ("POST", self._upload), GET_MEDIA: ("GET", self._get_media)}
        routes |= {AGENT_GET: ("GET", self._agent_get)}
        if rec.path not in routes:
            return web.Response(status=404, text="404 Not Found")
        method, handler = routes[rec.path]
        if rec.method != method:
            return web.Response(status=405, text="405 Method Not Allowed")
        if rec.path != GETTOKEN and (errcode := self._token_error(rec.query.get("access_token"))):
            return self._error(rec, request, errcode)
        return handler(rec, request)

    def _failure(self, rec: RecordedRequest, failure: _Failure, request: web.Request) -> web.Response:
        if failure.errcode is not None:
            return self._error(rec, request, failure.errcode, failure.errmsg, status=failure.status)
        if failure.status == 200:
            return web.Response(text="<html><body>502 Bad Gateway (proxy)</body></html>", content_type="text/html")
        return web.Response(status=failure.status, text=failure.errmsg or f"HTTP {failure.status}")

    def _token_error(self, token: str | None) -> int:
        if not token:
            return 41001
        if token not in self._tokens:
            return 40014
        return 42001 if time.monotonic() >= self._tokens[token] else 0

    def _gettoken(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        corpid, secret = rec.query.get("corpid"), rec.query.get("corpsecret")
        if not corpid:
            return self._error(rec, request, 41002)
        if not secret:
            return self._error(rec, request, 41004)
        if corpid != self.corp_id:
            return self._error(rec, request, 40013)
        if secret != self.secret:
            return self._error(rec, request, 40001)
        token = f"fake-token-{len(self._tokens) + 1}-{secrets.token_urlsafe(24)}"
        self._tokens[token] = time.monotonic() + self.token_ttl
        return self._ok(rec, errmsg="ok", access_token=token, expires_in=int(self.token_ttl))

    def _agent_get(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        agentid = rec.query.get("agentid", "")
        if not agentid.isdecimal():
            return self._error(rec, request, 40056)
        if int(agentid) != self.agent_id:
            return self._error(rec, request, 60011)
        return self._ok(rec, errmsg="ok", agentid=self.agent_id, name=self.agent_name, close=0)

    def _send(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        msg = rec.json
        if not isinstance(msg, dict):
            return self._error(rec, request, 47001)
        if str(msg.get("agentid")) != str(self.agent_id):
            return self._error(rec, request, 301002)
        recipients = [u for u in str(msg.get("touser") or "").split("|") if u]
        valid = [u for u in recipients if self.users is None or u == "@all" or u in self.users]
        if not valid:
            return self._error(rec, request, 81013)
        msgtype = msg.get("msgtype")
        payload = msg.get(str(msgtype))
        if not isinstance(payload, dict):
            return self._error(rec, request, 40008 if msgtype not in ("text", "markdown") else 44004)
        if msgtype in ("text", "markdown"):
            content = payload.get("content")
            if not isinstance(content, str) or not content:
                return self._error(rec, request, 44004)
            if len(content.encode()) > TEXT_LIMIT:
                return self._error(rec, request, 45002)
        elif msgtype in MEDIA_LIMITS:
            if payload.get("media_id") not in self.media:
                return self._error(rec, request, 40007)
        else:
            return self._error(rec, request, 40008)
        if self._drops(msg, valid):
            self.dropped.append(msg)
        else:
            self.sent.append(msg)
            self._delivered.append((time.monotonic(), msg))
        invalid = "|".join(u for u in recipients if u not in valid)
        return self._ok(rec, errmsg="ok", invaliduser=invalid, msgid=f"fake-msgid-{len(self.sent)}")

    def _drops(self, msg: dict[str, Any], recipients: list[str]) -> bool:
        """WeCom's silent drops: a duplicate (the same JSON within its interval) or a member over the rate."""
        now = time.monotonic()
        if msg.get("enable_duplicate_check") == 1:
            interval = float(msg.get("duplicate_check_interval", 1800))
            if any(body == msg and now - at < interval for at, body in self._delivered):
                self.duplicates_dropped += 1
                return True
        for count, seconds in self.member_rates:
            for user in recipients:
                recent = sum(now - at < seconds and user in str(b["touser"]).split("|") for at, b in self._delivered)
                if recent >= count:
                    return True
        return False

    def _upload(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        kind = rec.query.get("type", "")
        if kind not in MEDIA_LIMITS:
            return self._error(rec, request, 40004)
        part = _multipart(rec.headers.get("Content-Type", ""), rec.body).get("media")
        if part is None or not part.filename:
            return self._error(rec, request, 41005)
        if not part.data:
            return self._error(rec, request, 44001)
        if len(part.data) > MEDIA_LIMITS[kind]:
            return self._error(rec, request, 45001)
        media_id = f"fake-media-{len(self.media) + 1}-{secrets.token_urlsafe(12)}"
        self.media[media_id] = StoredMedia(part.data, part.content_type, part.filename, kind)
        return self._ok(rec, errmsg="", type=kind, media_id=media_id, created_at=str(int(time.time())))

    def _get_media(self, rec: RecordedRequest, request: web.Request) -> web.Response:
        media = self.media.get(rec.query.get("media_id", ""))
        if media is None:
            return self._error(rec, request, 40007)
        disposition = f'attachment; filename="{media.filename}"'
        return web.Response(
            body=media.data, content_type=media.content_type, headers={"Content-Disposition": disposition}
        )

    def _ok(self, rec: RecordedRequest, **fields: Any) -> web.Response:
        rec.errcode = 0
        return web.json_response({"errcode": 0, **fields})

    def _error(
        self,
        rec: RecordedRequest,
        request: web.Request,
        errcode: int,
        errmsg: str | None = None,
        status: int = 200,
    ) -> web.Response:
        """A JSON error shaped like the real one, ``from ip`` included."""
        rec.errcode = errcode
        text = errmsg or (
            f"{ERRMSGS.get(errcode, 'error')}, hint: [{int(time.time())}-{secrets.token_hex(4)}], "
            f"from ip: {request.remote}, more info at https://open.work.weixin.qq.com/devtool/query?e={errcode}"
        )
        return web.json_response({"errcode": errcode, "errmsg": text}, status=status)


def _json_or_none(body: bytes) -> Any:
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def _multipart(content_type: str, body: bytes) -> dict[str, _Part]:
    """The parts of a multipart/form-data body by field name, payload bytes exactly as sent."""
    header = Message()
    header["Content-Type"] = content_type
    boundary = header.get_param("boundary")
    if header.get_content_type() != "multipart/form-data" or not isinstance(boundary, str):
        return {}
    parts: dict[str, _Part] = {}
    for chunk in (b"\r\n" + body).split(b"\r\n--" + boundary.encode())[1:]:
        if chunk.startswith(b"--"):
            break
        head, _, data = chunk.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        headers = BytesHeaderParser().parsebytes(head + b"\r\n\r\n")
        name = headers.get_param("name", header="content-disposition")
        if isinstance(name, str):
            parts[name] = _Part(headers.get_filename(), headers.get_content_type(), data)
    return parts
