"""HTTP mode (dingtalk-protocol.md §3): DingTalk POSTs the bot message as JSON with `timestamp` and `sign` headers.

Routes: `POST /dingtalk/callback`, and — as chatgpt-dingtalk did — `POST /` or any other path no route has, but
only for a request that carries both headers (what `is_signed` tells `claims`), so the WeCom app's signed query
and other pages keep their paths. Checks before anything is read into the pipeline: both headers (else 401), a
timestamp within an hour and a signature of one configured app (else 403: stale or forged), a JSON bot message
(else 400). 200 `{}` once the message is committed to the inbox (a msgId seen before: 200, nothing else). The
answer goes out later, through the sessionWebhook or OpenAPI, never in this response.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence

from aiohttp import web

from chatgpt_wecom.daemon.channels.dingtalk.messages import MessageError, decode
from chatgpt_wecom.daemon.channels.dingtalk.signing import verify

log = logging.getLogger(__name__)

PATH = "/dingtalk/callback"
MAX_BODY = 64 * 1024  # a bot message is a few KB

Take = Callable[[dict[str, object], str], Awaitable[None]]  # (message, client_id of the app that signed it)


def is_signed(request: web.Request) -> bool:
    """Whether a request looks like DingTalk's (what the catch-all path hands to this channel)."""
    return request.method == "POST" and bool(request.headers.get("timestamp")) and bool(request.headers.get("sign"))


def _refuse(request: web.Request, status: int, reason: str) -> web.Response:
    log.warning("dingtalk callback: refused %s %s from %s: %s", request.method, request.path, request.remote or "?",
                reason)  # fmt: skip
    return web.json_response({"error": reason}, status=status)


class Callback:
    def __init__(self, apps: Sequence[tuple[str, str]], take: Take, clock: Callable[[], float] = time.time) -> None:
        self._ids = [client_id for client_id, _ in apps]
        self._secrets = [secret for _, secret in apps]
        self._take = take
        self._clock = clock

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(PATH, self.handle)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        timestamp, sign = request.headers.get("timestamp", ""), request.headers.get("sign", "")
        if not (timestamp and sign):
            return _refuse(request, 401, "missing timestamp or sign header")
        app = verify(timestamp.strip(), sign.strip(), self._secrets, int(self._clock() * 1000))
        if app is None:
            return _refuse(request, 403, "signature does not match any configured app, or timestamp too old")
        try:
            data = decode(await request.read())
        except web.HTTPRequestEntityTooLarge:
            return _refuse(request, 413, "body too large")
        except MessageError as exc:
            return _refuse(request, 400, str(exc))
        try:
            await self._take(data, self._ids[app])
        except MessageError as exc:
            return _refuse(request, 400, str(exc))
        return web.json_response({})
