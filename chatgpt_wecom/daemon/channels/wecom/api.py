"""WeCom (企业微信) server API client: access_token, message/send, media upload/download.

Protocol facts (``wecom-protocol.md`` §6): every answer carries ``errcode`` (0 = success) whatever the
HTTP status; the token lives in the query string; 40014/42001 mean "fetch a new token"; 40001 from
``gettoken`` is a wrong secret, and repeating it gets the server's IP banned for an hour.

Every failure is a :class:`WeComAPIError` subclass telling the caller what to do next:

* :class:`WeComConfigError` — the operator must fix something (``hint`` says what); never retried.
* :class:`WeComRejectedError` — this request will never succeed; give up on it.
* :class:`WeComUnavailableError` — WeCom could not be reached or was busy; retries ran out, try again later.
* :class:`WeComRateLimitedError` — 45009/45033, "slow down": not retried here (WeCom blocks the caller for the
  window that was exceeded, 60 s or an hour), so the caller backs off as a whole instead of hammering.

Duplicate checking (``message/send``, doc 90236): with ``enable_duplicate_check: 1`` WeCom drops a message whose
request JSON equals one it accepted within ``duplicate_check_interval`` seconds. What this client relies on: every
send carries the check, the body is serialized once per call, so every try of one call — inner retries included —
is the same bytes; the caller passes the interval, and keeps it (and the content, and a media_id) the same across
restarts for one part, so a resend after a lost reply is dropped by WeCom instead of shown twice. Two different
parts with equal text must not be dropped as duplicates of each other: the caller gives them different intervals,
which makes their JSON differ (see ``pipeline/delivery.py``).

Exception texts and log lines never contain the access_token or the secret.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Final

import aiohttp

from chatgpt_wecom.daemon.channels.access_token import AccessToken
from chatgpt_wecom.daemon.channels.retry import RetryPolicy
from chatgpt_wecom.daemon.channels.transport import json_object, transport_error

__all__ = [
    "DEFAULT_RETRY",
    "DUPLICATE_CHECK_INTERVAL",
    "ERR_NOT_WECOM",
    "ERR_TRANSPORT",
    "MAX_DUPLICATE_CHECK_INTERVAL",
    "MEMBER_RATES",
    "RetryPolicy",
    "TokenState",
    "WeComAPIError",
    "WeComClient",
    "WeComConfigError",
    "WeComRateLimitedError",
    "WeComRejectedError",
    "WeComUnavailableError",
]

log = logging.getLogger(__name__)

ERR_TRANSPORT: Final = -2  # our errcode for HTTP errors, timeouts, connection errors and unreadable bodies
ERR_NOT_WECOM: Final = -3  # our errcode for an HTTP 4xx without JSON: api_base is not WeCom (or its proxy)
_TOKEN_INVALID: Final = frozenset({40014, 42001})
_TRANSIENT: Final = frozenset({-1})
_RATE_LIMITED: Final = frozenset({45009, 45033})
MAX_DUPLICATE_CHECK_INTERVAL: Final = 4 * 3600  # seconds; WeCom's documented maximum
DUPLICATE_CHECK_INTERVAL: Final = 1800  # seconds; WeCom's documented default
# "每应用对同一个成员不可超过30次/分钟，1000次/小时，超过部分会被丢弃不下发" (doc 90236): (messages, seconds)
MEMBER_RATES: Final = ((30, 60.0), (1000, 3600.0))
_HINTS: Final[dict[int, str]] = {
    40001: "wrong corp_id/agent_secret pair: agent_secret must be the app's Secret (应用管理 → app → Secret)",
    40091: "wrong corp_id/agent_secret pair: agent_secret must be the app's Secret (应用管理 → app → Secret)",
    40013: "corp_id is not valid: use 我的企业 → 企业信息 → 企业ID (starts with ww…)",
    60020: "add this server's IP{ip} to the app's 企业可信IP / trusted IPs (takes about a minute to apply)",
    48002: "the app may not call this API: check the app's API permissions and that agent_id is this app's",
    ERR_NOT_WECOM: "wecom_api_base does not answer like the WeCom API: check the URL and any proxy on it",
    301002: "agent_id does not belong to the app whose Secret is configured: check agent_id and agent_secret",
}
_SCRUB_RE: Final = re.compile(r"(access_token|corpsecret)=[^&\s'\"]*", re.IGNORECASE)
_FROM_IP_RE: Final = re.compile(r"from ip:\s*([0-9A-Fa-f.:]+)")
_MEDIA_KINDS: Final = frozenset({"image", "voice", "video", "file"})


class WeComAPIError(Exception):
    """A failed WeCom call. ``errmsg`` is scrubbed of tokens and secrets, so ``str(e)`` is safe to log."""

    def __init__(self, errcode: int, errmsg: str, *, api: str = "") -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        self.api = api
        super().__init__(f"WeCom {api or 'API'}: errcode {errcode}: {errmsg}")


class WeComConfigError(WeComAPIError):
    """The configuration is wrong (secret, corp_id, trusted IP, permissions); ``hint`` tells the operator."""

    def __init__(self, errcode: int, errmsg: str, *, api: str = "") -> None:
        super().__init__(errcode, errmsg, api=api)
        match = _FROM_IP_RE.search(errmsg)
        ip = f" ({match.group(1).rstrip('.:')})" if match else ""
        self.hint = _HINTS.get(errcode, "check corp_id, agent_id and agent_secret").format(ip=ip)


class WeComRejectedError(WeComAPIError):
    """WeCom refused this request for good (bad recipient, empty or oversized content, unknown errcode)."""


class WeComUnavailableError(WeComAPIError):
    """WeCom was unreachable, failing or busy, and the retries ran out; the request may succeed later."""


class WeComRateLimitedError(WeComUnavailableError):
    """45009/45033: WeCom says slow down. Raised at once (no inner retry): the caller pauses as a whole."""


class _TokenInvalid(WeComAPIError):
    """40014/42001: the token was refused; handled inside the client, never raised to callers."""


DEFAULT_RETRY: Final = RetryPolicy()


@dataclass(frozen=True)
class TokenState:
    """What the token cache looks like now, for status displays. Never holds the token itself.

    ``expires_in`` is the seconds until WeCom expires the cached token. ``last_error`` is the latest gettoken
    failure or config error of any call, cleared when a token is fetched successfully.
    """

    has_token: bool
    expires_in: float | None
    last_error: str | None
    last_error_code: int | None


@dataclass(frozen=True)
class _Call:
    method: str
    api: str  # e.g. "message/send"
    params: dict[str, str] = field(default_factory=dict)
    body: bytes | None = None  # a JSON body, serialized once: every try sends the same bytes
    upload: tuple[bytes, str, str] | None = None  # (data, filename, content type) as multipart field "media"
    raw: bool = False  # a media download: a 200 answer that is not a JSON error is the media itself


@dataclass(frozen=True)
class _Reply:
    data: dict[str, Any]  # the parsed JSON answer; empty for a media download
    body: bytes
    content_type: str


class WeComClient:
    """A client for one self-built app. The ``aiohttp.ClientSession`` belongs to the caller."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        api_base: str,
        corp_id: str,
        agent_id: int,
        secret: str,
        retry: RetryPolicy = DEFAULT_RETRY,
        clock: Callable[[], float] = time.monotonic,
        on_config_error: Callable[[WeComConfigError], None] | None = None,
    ) -> None:
        self._session = session
        self._base = api_base.rstrip("/")
        self._corp_id = corp_id
        self._agent_id = agent_id
        self._secret = secret
        self._retry = retry
        self._on_config_error = on_config_error
        self._token = AccessToken(clock, retry.config_error_cooldown)
        self._last_error: WeComAPIError | None = None
        self.seen_ip: str | None = None  # the IP WeCom last said our calls came from (its "from ip" in an error)

    def url(self, api: str) -> str:
        """The full URL of ``api`` (e.g. ``"message/send"``) under the configured base, without a query."""
        return f"{self._base}/cgi-bin/{api.lstrip('/')}"

    # --- access_token -----------------------------------------------------------------------------
    async def token(self) -> str:
        """A live access_token, cached and refreshed early; concurrent callers share one gettoken."""
        return await self._token.get(self._fetch_token)

    async def _fetch_token(self) -> tuple[str, float]:
        params = {"corpid": self._corp_id, "corpsecret": self._secret}
        try:
            reply = await self._request(_Call("GET", "gettoken", params))
            token = reply.data.get("access_token")
            if not isinstance(token, str) or not token:
                raise WeComUnavailableError(ERR_TRANSPORT, "answer has no access_token", api="gettoken")
        except WeComConfigError as exc:  # _request has reported it; remember it to spare WeCom (and our IP)
            self._token.refused(functools.partial(WeComConfigError, exc.errcode, exc.errmsg, api=exc.api))
            raise
        except WeComAPIError as exc:
            self._last_error = exc
            raise
        expires_in = float(reply.data.get("expires_in") or 7200)
        self._last_error = None
        log.info("WeCom access_token fetched, valid for %.0f s", expires_in)
        return token, expires_in

    def clear_config_error(self) -> None:
        """Forget a remembered gettoken config error so the next call asks WeCom again (after a fix)."""
        self._token.forget_refusal()

    def token_state(self) -> TokenState:
        """A snapshot of the token cache and the last token/config error (never the token itself)."""
        remaining = self._token.remaining()
        err = self._last_error
        return TokenState(
            has_token=remaining is not None,
            expires_in=remaining,
            last_error=str(err) if err else None,
            last_error_code=err.errcode if err else None,
        )

    # --- API calls --------------------------------------------------------------------------------
    async def send_message(
        self, user: str, content: str, *, markdown: bool, duplicate_check_interval: int = DUPLICATE_CHECK_INTERVAL
    ) -> str:
        """Send a text or markdown app message to ``user`` ("a|b" for several); returns the msgid or "".

        WeCom drops it if an equal request (same JSON, interval included) was accepted within
        ``duplicate_check_interval`` seconds: resend a part with the same interval, give distinct parts distinct ones.
        """
        msgtype = "markdown" if markdown else "text"
        return await self._send(user, msgtype, {"content": content}, duplicate_check_interval)

    async def send_image(
        self, user: str, media_id: str, *, duplicate_check_interval: int = DUPLICATE_CHECK_INTERVAL
    ) -> str:
        """Send an uploaded image (see :meth:`upload_media`) to ``user``; returns the msgid or ""."""
        return await self._send(user, "image", {"media_id": media_id}, duplicate_check_interval)

    async def _send(self, user: str, msgtype: str, payload: dict[str, str], interval: int) -> str:
        if not 0 < interval <= MAX_DUPLICATE_CHECK_INTERVAL:
            raise ValueError(f"duplicate_check_interval must be 1..{MAX_DUPLICATE_CHECK_INTERVAL} s, not {interval}")
        body: dict[str, Any] = {"touser": user, "msgtype": msgtype, "agentid": self._agent_id}
        body |= {msgtype: payload, "safe": 0, "enable_duplicate_check": 1, "duplicate_check_interval": interval}
        call = _Call("POST", "message/send", body=json.dumps(body).encode())
        data = (await self._call(call)).data
        if data.get("invaliduser"):
            log.warning("WeCom message/send: some recipients are invalid: %s", data["invaliduser"])
        return str(data.get("msgid") or "")

    async def agent(self) -> dict[str, Any]:
        """The configured app as WeCom knows it (``agent/get``: its ``name``, …); proves agent_id is this app's."""
        return (await self._call(_Call("GET", "agent/get", {"agentid": str(self._agent_id)}))).data

    async def upload_media(self, kind: str, data: bytes, filename: str, content_type: str) -> str:
        """Upload temporary media (valid 3 days); ``kind``: image, voice, video or file. Returns media_id."""
        if kind not in _MEDIA_KINDS:
            raise ValueError(f"media kind must be one of {sorted(_MEDIA_KINDS)}, not {kind!r}")
        call = _Call("POST", "media/upload", {"type": kind}, upload=(data, filename, content_type))
        media_id = (await self._call(call)).data.get("media_id")
        if not isinstance(media_id, str) or not media_id:
            raise WeComUnavailableError(ERR_TRANSPORT, "answer has no media_id", api=call.api)
        return media_id

    async def download_media(self, media_id: str) -> tuple[bytes, str]:
        """Download media a user sent; returns (bytes, content type). A JSON answer raises a typed error."""
        reply = await self._call(_Call("GET", "media/get", {"media_id": media_id}, raw=True))
        return reply.body, reply.content_type

    # --- plumbing ---------------------------------------------------------------------------------
    async def _call(self, call: _Call) -> _Reply:
        """A token-authenticated call; on 40014/42001 it fetches a new token and tries once more."""
        for fresh in (False, True):
            token = await self.token()
            try:
                return await self._request(replace(call, params={**call.params, "access_token": token}))
            except _TokenInvalid as exc:
                self._token.drop(token)
                if fresh:
                    msg = f"{exc.errmsg} (refused again with a freshly fetched access_token)"
                    raise WeComUnavailableError(exc.errcode, msg, api=call.api) from None
                log.info("WeCom %s: access_token refused (errcode %d), fetching a new one", call.api, exc.errcode)
        raise AssertionError("unreachable")

    async def _request(self, call: _Call) -> _Reply:
        """One call with bounded retries of transient failures; config errors are reported here."""
        for attempt in range(1, self._retry.attempts + 1):
            try:
                return await self._once(call)
            except WeComRateLimitedError as exc:
                log.warning("%s; WeCom asks to slow down", exc)
                raise
            except WeComUnavailableError as exc:
                if attempt == self._retry.attempts:
                    log.warning("%s; giving up after %d attempts", exc, attempt)
                    raise
                delay = self._retry.delay(attempt)
                log.info("%s; retry %d in %.2f s", exc, attempt, delay)
                await asyncio.sleep(delay)
            except WeComConfigError as exc:
                self._last_error = exc
                if self._on_config_error is None:
                    log.error("%s — configuration error: %s", exc, exc.hint)
                else:  # the owner logs it and tells the operator
                    try:
                        self._on_config_error(exc)
                    except Exception:
                        log.exception("on_config_error callback failed")
                raise
        raise AssertionError("unreachable")

    async def _once(self, call: _Call) -> _Reply:
        form: aiohttp.FormData | None = None
        if call.upload is not None:  # a FormData can be sent only once: build one per attempt
            form = aiohttp.FormData()
            media, filename, media_type = call.upload
            form.add_field("media", media, filename=filename, content_type=media_type)
        timeout = aiohttp.ClientTimeout(total=self._retry.timeout)
        url = self.url(call.api)
        headers = {"Content-Type": "application/json"} if call.body is not None else None
        try:
            async with self._session.request(
                call.method, url, params=call.params, data=form or call.body, headers=headers, timeout=timeout
            ) as resp:
                status, content_type, body = resp.status, resp.content_type, await resp.read()
        except TimeoutError:
            raise self._error(ERR_TRANSPORT, f"timed out after {self._retry.timeout:g} s", call) from None
        except aiohttp.ClientError as exc:
            raise self._error(ERR_TRANSPORT, transport_error(exc), call) from None
        if status >= 500 or status in (408, 429):
            raise self._error(ERR_TRANSPORT, f"HTTP {status}", call)
        data = json_object(body)
        if call.raw and status == 200 and (data is None or "errcode" not in data):
            return _Reply({}, body, content_type)
        if data is None:
            errcode = ERR_TRANSPORT if status == 200 else ERR_NOT_WECOM
            raise self._error(errcode, f"HTTP {status} with a non-JSON body ({content_type}) from {url}", call)
        errcode = _int(data.get("errcode", 0))
        if errcode != 0:
            raise self._error(errcode, str(data.get("errmsg", "")), call)
        if status != 200:
            raise WeComRejectedError(ERR_TRANSPORT, f"HTTP {status}", api=call.api)
        return _Reply(data, body, content_type)

    def _error(self, errcode: int, errmsg: str, call: _Call) -> WeComAPIError:
        """The typed error for ``errcode``, with ``errmsg`` scrubbed of the secret and tokens."""
        errmsg = _SCRUB_RE.sub(r"\1=***", errmsg)
        if match := _FROM_IP_RE.search(errmsg):
            self.seen_ip = match.group(1).rstrip(".:")
        for secret in (self._secret, self._token.value, call.params.get("access_token")):
            if secret:
                errmsg = errmsg.replace(secret, "***")
        if errcode in _TOKEN_INVALID:
            return _TokenInvalid(errcode, errmsg, api=call.api)
        if errcode in _HINTS:
            return WeComConfigError(errcode, errmsg, api=call.api)
        if errcode in _RATE_LIMITED:
            return WeComRateLimitedError(errcode, errmsg, api=call.api)
        if errcode == ERR_TRANSPORT or errcode in _TRANSIENT:
            return WeComUnavailableError(errcode, errmsg, api=call.api)
        return WeComRejectedError(errcode, errmsg, api=call.api)


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return ERR_TRANSPORT
