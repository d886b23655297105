"""DingTalk's server API for one app (dingtalk-protocol.md §1.1, §4): access token, sessionWebhook replies, robot
sends, downloads of what users sent, media upload, and the Stream gateway's ticket.

Errors are typed by what the caller should do:
- `DingTalkConfigError` — the operator must fix something (`hint` names the console setting or permission):
  a wrong AppKey/AppSecret, a permission not granted, the org's monthly API quota used up. A refused token is
  remembered for `config_error_cooldown`, so a wrong secret costs DingTalk one call, not one per message.
- `DingTalkRateLimited` — DingTalk said slow down (403 QpsLimit…, webhook errcode 130101, flow control).
- `DingTalkRejected` — this request will never succeed (bad recipient, bad parameters).
- `DingTalkUnavailable` — unreachable, 5xx, 429, timeouts: try again later. Calls that may be repeated safely
  (token, download, upload, gateway) are retried here; sends are tried once (DingTalk has no duplicate check, so
  a retry after a lost reply would show the message twice — the pipeline decides when to try again).
- `WebhookRefused` — the sessionWebhook no longer takes messages (errcode 300001: expired, or another refusal):
  the caller sends through OpenAPI instead.
New-style calls (`api_base`) carry the token in `x-acs-dingtalk-access-token` and answer errors as HTTP 4xx/5xx
with `{"code", "message"}`; the legacy `oapi_base` answers HTTP 200 with `{"errcode", "errmsg"}`.
`str(error)` never holds the secret or a token.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import aiohttp

from chatgpt_wecom.daemon.channels.access_token import AccessToken
from chatgpt_wecom.daemon.channels.retry import RetryPolicy
from chatgpt_wecom.daemon.channels.transport import json_object, transport_error

log = logging.getLogger(__name__)

SEND_PERMISSION: Final = "qyapi_robot_sendmsg (企业内机器人发送消息权限)"
CREDENTIALS_HINT: Final = (
    "client_id/client_secret must be the app's Client ID (AppKey) and Client Secret (AppSecret): "
    "开发者后台 → 应用开发 → your app → 凭证与基础信息"
)
STREAM_HINT: Final = CREDENTIALS_HINT + "; and 机器人 → 消息接收模式 must be Stream 模式"
QUOTA_HINT: Final = "the org's monthly OpenAPI quota is used up (standard edition: 10,000 calls a month)"
WEBHOOK_EXPIRED: Final = 300001  # "session 不存在": the sessionWebhook expired
WEBHOOK_TOO_FAST: Final = 130101  # "send too fast, exceed 20 times per minute"
WEBHOOK_TOO_LARGE: Final = 460101
_LEGACY_TOKEN_INVALID: Final = frozenset({40014, 42001, 40001})
_LEGACY_RATE: Final = frozenset({90018, 90002, 90006})
_LEGACY_PERMISSION: Final = frozenset({60011, 60020, 60121, 88})
CallConfig = Callable[["DingTalkConfigError"], None]


class DingTalkError(Exception):
    """A failed DingTalk call; `str(e)` is safe to log."""

    def __init__(self, api: str, message: str) -> None:
        super().__init__(f"DingTalk {api}: {message}")
        self.api = api
        self.message = message


class DingTalkConfigError(DingTalkError):
    def __init__(self, api: str, message: str, hint: str) -> None:
        super().__init__(api, message)
        self.hint = hint


class DingTalkRejected(DingTalkError):
    pass


class DingTalkUnavailable(DingTalkError):
    pass


class DingTalkRateLimited(DingTalkUnavailable):
    pass


class WebhookRefused(DingTalkError):
    pass


class _TokenRefused(DingTalkError):
    """HTTP 401 / legacy 40014: fetch a new token and try once more (never raised to callers)."""


@dataclass(frozen=True)
class TokenState:
    has_token: bool
    expires_in: float | None
    last_error: str | None


@dataclass(frozen=True)
class _Answer:
    status: int
    data: dict[str, Any] | None
    body: bytes
    content_type: str


class DingTalkClient:
    """One app's calls. The `aiohttp.ClientSession` belongs to the caller."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        client_id: str,
        client_secret: str,
        api_base: str,
        oapi_base: str,
        retry: RetryPolicy,
        on_config_error: CallConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id = client_id
        self._secret = client_secret
        self._session = session
        self._api = api_base.rstrip("/")
        self._oapi = oapi_base.rstrip("/")
        self._retry = retry
        self._on_config_error = on_config_error
        self._token = AccessToken(clock, retry.config_error_cooldown)
        self._last_error: str | None = None

    # --- token ------------------------------------------------------------------------------------------
    async def token(self) -> str:
        """A live access token, cached and refreshed 5 minutes early; concurrent callers share one fetch."""
        return await self._token.get(self._fetch_token)

    async def _fetch_token(self) -> tuple[str, float]:
        body = {"appKey": self.client_id, "appSecret": self._secret}
        try:
            answer = await self._call("POST", f"{self._api}/v1.0/oauth2/accessToken", "accessToken", json_body=body)
            data = self._check_new("accessToken", answer, token_call=True)
        except DingTalkConfigError as exc:
            self._token.refused(functools.partial(DingTalkConfigError, exc.api, exc.message, exc.hint))
            self._reported(exc)
            raise
        except DingTalkError as exc:
            self._last_error = str(exc)
            raise
        token = data.get("accessToken")
        if not isinstance(token, str) or not token:
            raise DingTalkUnavailable("accessToken", "answer has no accessToken")
        expires_in = float(data.get("expireIn") or 7200)
        self._last_error = None
        log.info("DingTalk app %s: access token fetched, valid for %.0f s", self.client_id, expires_in)
        return token, expires_in

    def token_state(self) -> TokenState:
        remaining = self._token.remaining()
        return TokenState(remaining is not None, remaining, self._last_error)

    # --- the Stream gateway ---------------------------------------------------------------------------
    async def open_connection(self, subscriptions: list[dict[str, str]], ua: str) -> tuple[str, str]:
        """(endpoint, ticket) of a new Stream connection; the ticket is single-use and lives 90 s."""
        body = {"clientId": self.client_id, "clientSecret": self._secret, "subscriptions": subscriptions, "ua": ua}
        answer = await self._call("POST", f"{self._api}/v1.0/gateway/connections/open", "gateway", json_body=body)
        if answer.status == 401 or (answer.status in (400, 403) and _code(answer) == "authFailed"):
            raise DingTalkConfigError("gateway", f"HTTP {answer.status} {self._said(answer)}", STREAM_HINT)
        data = self._check_new("gateway", answer)
        endpoint, ticket = data.get("endpoint"), data.get("ticket")
        if not (isinstance(endpoint, str) and endpoint and isinstance(ticket, str) and ticket):
            raise DingTalkUnavailable("gateway", "answer has no endpoint or ticket")
        return endpoint, ticket

    # --- replies ----------------------------------------------------------------------------------------
    async def webhook(self, url: str, body: dict[str, Any]) -> None:
        """POST to a message's sessionWebhook (no token), checking the errcode in the body."""
        answer = await self._call("POST", url, "sessionWebhook", json_body=body, attempts=1)
        if answer.status >= 500 or answer.status == 429:
            raise DingTalkUnavailable("sessionWebhook", f"HTTP {answer.status}")
        data = answer.data or {}
        errcode = _int(data.get("errcode", 0 if answer.status == 200 else -1))
        said = f"errcode {errcode} {str(data.get('errmsg', ''))[:120]}".strip()
        if answer.status == 200 and errcode == 0:
            return
        if errcode == WEBHOOK_TOO_FAST:
            raise DingTalkRateLimited("sessionWebhook", said)
        if errcode == WEBHOOK_TOO_LARGE:
            raise DingTalkRejected("sessionWebhook", said)
        raise WebhookRefused("sessionWebhook", said if answer.data else f"HTTP {answer.status}")

    async def send_private(self, user_id: str, msg_key: str, msg_param: dict[str, str]) -> None:
        """oToMessages/batchSend to one person; a recipient DingTalk lists as invalid or flow-controlled raises."""
        body = {"robotCode": self.client_id, "userIds": [user_id], "msgKey": msg_key, "msgParam": _param(msg_param)}
        data = await self._new("POST", "/v1.0/robot/oToMessages/batchSend", body, attempts=1)
        if user_id in (data.get("invalidStaffIdList") or []):
            raise DingTalkRejected("batchSend", f"{user_id} is not a valid staffId of this org")
        if user_id in (data.get("flowControlledStaffIdList") or []):
            raise DingTalkRateLimited("batchSend", f"{user_id} is flow-controlled")

    async def send_group(self, conversation_id: str, msg_key: str, msg_param: dict[str, str]) -> None:
        body = {"robotCode": self.client_id, "openConversationId": conversation_id, "msgKey": msg_key,
                "msgParam": _param(msg_param)}  # fmt: skip
        await self._new("POST", "/v1.0/robot/groupMessages/send", body, attempts=1)

    # --- AI cards (§5) ----------------------------------------------------------------------------------
    async def create_card(self, body: dict[str, Any]) -> None:
        """createAndDeliver; a delivery DingTalk reports as failed (e.g. "spaceId is illegal") raises Rejected."""
        data = await self._new("POST", "/v1.0/card/instances/createAndDeliver", body, attempts=1)
        results = (data.get("result") or {}).get("deliverResults") or []
        failed = [str(r.get("errorMsg") or "failed") for r in results if isinstance(r, dict) and not r.get("success")]
        if data.get("success") is False or failed:
            raise DingTalkRejected("card/createAndDeliver", "; ".join(failed) or "not delivered")

    async def stream_card(self, body: dict[str, Any]) -> None:
        """One streaming update (the whole markdown so far: `isFull`)."""
        await self._new("PUT", "/v1.0/card/streaming", body, attempts=1)

    # --- media ------------------------------------------------------------------------------------------
    async def download(self, download_code: str) -> tuple[bytes, str]:
        """What a user sent: messageFiles/download gives a temporary URL, fetched without the token."""
        body = {"downloadCode": download_code, "robotCode": self.client_id}
        url = (await self._new("POST", "/v1.0/robot/messageFiles/download", body)).get("downloadUrl")
        if not isinstance(url, str) or not url:
            raise DingTalkRejected("messageFiles/download", "answer has no downloadUrl")
        answer = await self._call("GET", url, "downloadUrl")
        if answer.status != 200:
            raise DingTalkUnavailable("downloadUrl", f"HTTP {answer.status}")
        return answer.body, answer.content_type

    async def upload_image(self, data: bytes, filename: str, content_type: str) -> str:
        """Legacy media/upload (type image): the media_id to show in markdown or sampleImageMsg."""
        for fresh in (False, True):
            token = await self.token()
            form = aiohttp.FormData()
            form.add_field("type", "image")
            form.add_field("media", data, filename=filename, content_type=content_type)
            answer = await self._call("POST", f"{self._oapi}/media/upload", "media/upload",
                                      params={"access_token": token}, form=form)  # fmt: skip
            try:
                reply = self._check_legacy("media/upload", answer)
            except _TokenRefused:
                self._token.drop(token)
                if fresh:
                    raise DingTalkUnavailable("media/upload", "token refused again after a refresh") from None
                continue
            media_id = reply.get("media_id")
            if not isinstance(media_id, str) or not media_id:
                raise DingTalkUnavailable("media/upload", "answer has no media_id")
            return media_id
        raise AssertionError("unreachable")

    # --- plumbing ---------------------------------------------------------------------------------------
    async def _new(self, method: str, path: str, body: dict[str, Any], attempts: int | None = None) -> dict[str, Any]:
        """A new-style call with the token; on 401 a new token and one more try."""
        api = path.removeprefix("/v1.0/")
        for fresh in (False, True):
            token = await self.token()
            headers = {"x-acs-dingtalk-access-token": token}
            answer = await self._call(method, f"{self._api}{path}", api, json_body=body, headers=headers,
                                      attempts=attempts)  # fmt: skip
            try:
                return self._check_new(api, answer)
            except _TokenRefused:
                self._token.drop(token)
                if fresh:
                    raise DingTalkUnavailable(api, "token refused again after a refresh") from None
                log.info("DingTalk %s: token refused, fetching a new one", api)
            except DingTalkConfigError as exc:
                self._reported(exc)
                raise
        raise AssertionError("unreachable")

    def _check_new(self, api: str, answer: _Answer, *, token_call: bool = False) -> dict[str, Any]:
        if answer.status == 200 and answer.data is not None:
            return answer.data
        code, said = _code(answer), self._said(answer)
        if answer.status >= 500 or answer.status in (408, 429):
            raise DingTalkUnavailable(api, f"HTTP {answer.status} {said}")
        if "QpsLimit" in code:
            raise DingTalkRateLimited(api, f"HTTP {answer.status} {said}")
        if "ApiCountLimit" in code:
            raise DingTalkConfigError(api, f"HTTP {answer.status} {said}", QUOTA_HINT)
        if token_call and 400 <= answer.status < 500:
            raise DingTalkConfigError(api, f"HTTP {answer.status} {said}", CREDENTIALS_HINT)
        if answer.status == 401:
            raise _TokenRefused(api, f"HTTP 401 {said}")
        if answer.status == 403:
            scopes = ((answer.data or {}).get("accessdenieddetail") or {}).get("requiredScopes") or []
            needed = ", ".join(str(s) for s in scopes) if scopes else SEND_PERMISSION
            hint = f"grant the app the permission {needed}: 开发者后台 → your app → 权限管理, then publish the app"
            raise DingTalkConfigError(api, f"HTTP 403 {said}", hint)
        if answer.status != 200:
            raise DingTalkRejected(api, f"HTTP {answer.status} {said}")
        raise DingTalkUnavailable(api, f"HTTP 200 with a body that is not JSON ({answer.content_type})")

    def _check_legacy(self, api: str, answer: _Answer) -> dict[str, Any]:
        if answer.status >= 500 or answer.status == 429:
            raise DingTalkUnavailable(api, f"HTTP {answer.status}")
        if answer.data is None:
            raise DingTalkUnavailable(api, f"HTTP {answer.status} with a body that is not JSON")
        errcode = _int(answer.data.get("errcode", 0))
        said = f"errcode {errcode} {self._scrub(str(answer.data.get('errmsg', ''))[:120])}"
        if errcode == 0 and answer.status == 200:
            return answer.data
        if errcode in _LEGACY_TOKEN_INVALID:
            raise _TokenRefused(api, said)
        if errcode in _LEGACY_RATE:
            raise DingTalkRateLimited(api, said)
        if errcode in _LEGACY_PERMISSION:
            exc = DingTalkConfigError(api, said, f"grant the app the permission {SEND_PERMISSION} and publish it")
            self._reported(exc)
            raise exc
        if errcode == -1:
            raise DingTalkUnavailable(api, said)
        raise DingTalkRejected(api, said)

    def _said(self, answer: _Answer) -> str:
        data = answer.data or {}
        return self._scrub(f"{data.get('code', '')} {str(data.get('message', ''))[:160]}".strip())

    def _scrub(self, text: str) -> str:
        for secret in (self._secret, self._token.value):
            if secret:
                text = text.replace(secret, "***")
        return text

    def _reported(self, exc: DingTalkConfigError) -> None:
        self._last_error = str(exc)
        if self._on_config_error is not None:
            self._on_config_error(exc)

    async def _call(
        self,
        method: str,
        url: str,
        api: str,
        *,
        json_body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        form: aiohttp.FormData | None = None,
        attempts: int | None = None,
    ) -> _Answer:
        """One HTTP exchange, transport failures and 5xx retried (`attempts`, default the policy's)."""
        tries = 1 if form is not None else (attempts or self._retry.attempts)  # a FormData is sent once
        data = json.dumps(json_body, ensure_ascii=False).encode() if json_body is not None else form
        all_headers = {"Content-Type": "application/json", **(headers or {})} if json_body is not None else headers
        timeout = aiohttp.ClientTimeout(total=self._retry.timeout)
        for attempt in range(1, tries + 1):
            try:
                async with self._session.request(method, url, data=data, headers=all_headers, params=params,
                                                 timeout=timeout) as resp:  # fmt: skip
                    answer = _Answer(resp.status, None, await resp.read(), resp.content_type)
                if answer.status < 500 or attempt == tries:
                    return _Answer(answer.status, json_object(answer.body), answer.body, answer.content_type)
                reason = f"HTTP {answer.status}"
            except TimeoutError:
                reason = f"timed out after {self._retry.timeout:g} s"
            except aiohttp.ClientError as exc:
                reason = self._scrub(transport_error(exc))
            if attempt == tries:
                raise DingTalkUnavailable(api, reason)
            delay = self._retry.delay(attempt)
            log.info("DingTalk %s: %s; retry %d in %.2f s", api, reason, attempt, delay)
            await asyncio.sleep(delay)
        raise AssertionError("unreachable")


def _param(msg_param: dict[str, str]) -> str:
    """msgParam is a JSON string inside the JSON body."""
    return json.dumps(msg_param, ensure_ascii=False)


def _code(answer: _Answer) -> str:
    return str((answer.data or {}).get("code", ""))


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1
