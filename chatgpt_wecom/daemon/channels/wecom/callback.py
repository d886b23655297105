"""The WeCom callback: verify, decrypt, parse, hand to the intake, ack — the answer goes out later via message/send.

GET answers WeCom's URL check with the decrypted echostr. POST acks with 200 and an empty body as soon as the
intake has committed the message to the inbox (a retry of the same MsgId is acked and dropped). Anything that is
not a well-formed message from this corp and app is refused with a 4xx, a warning in the log and nothing more.

Routes: `/ai/callback`, and — like the Go project — any other path, but only for requests that carry WeCom's
signed query (`msg_signature`, `timestamp`, `nonce`): other paths stay free for other channels and pages.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from chatgpt_wecom.daemon.channels.base import Channel, Inbound, Intake
from chatgpt_wecom.daemon.channels.wecom.crypto import CryptoError, DecryptError, WeComCrypto
from chatgpt_wecom.daemon.channels.wecom.messages import MessageError, parse_envelope, parse_message

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a real envelope is a few KB; anything near this is not from WeCom
SIGNED = ("msg_signature", "timestamp", "nonce")

_PAYLOAD_FIELDS = ("media_id", "pic_url", "format", "recognition", "event", "event_key")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _refuse(request: web.Request, status: int, reason: str) -> web.Response:
    peer = request.remote or "?"
    log.warning("callback: refused %s %s from %s: %s", request.method, request.path, peer, reason)
    return web.Response(status=status, text=f"{status} {reason}\n")


def _signed_query(request: web.Request, *names: str) -> dict[str, str] | None:
    query = request.query
    if not all(query.get(n) for n in names):
        return None
    # aiohttp decodes a raw "+" in the query to a space; Base64 never holds spaces (protocol notes §2.1).
    return {n: query[n].replace(" ", "+") for n in names}


def is_signed(request: web.Request) -> bool:
    """Whether a request carries WeCom's signed query (what the catch-all path takes as WeCom's)."""
    return all(request.query.get(n) for n in SIGNED)


class Callback:
    """The two handlers of one app's callback URL."""

    def __init__(self, channel: Channel, crypto: WeComCrypto, agent_id: int, intake: Intake) -> None:
        self._channel = channel
        self._crypto = crypto
        self._agent_id = str(agent_id)
        self._intake = intake

    async def handle(self, request: web.Request) -> web.StreamResponse:
        return await (self.verify_url(request) if request.method == "GET" else self.receive(request))

    async def verify_url(self, request: web.Request) -> web.Response:
        """GET: WeCom's URL check. Answer the decrypted echostr as plain text."""
        q = _signed_query(request, *SIGNED, "echostr")
        if q is None:
            return _refuse(request, 400, "missing msg_signature, timestamp, nonce or echostr")
        try:
            echo = self._crypto.verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        except CryptoError as exc:
            return _refuse(request, 403 if not isinstance(exc, DecryptError) else 400, str(exc))
        log.info("callback: URL check answered")
        return web.Response(text=echo, content_type="text/plain")

    async def receive(self, request: web.Request) -> web.Response:
        """POST: a message or event. 200 with an empty body once it is safely stored."""
        q = _signed_query(request, *SIGNED)
        if q is None:
            return _refuse(request, 400, "missing msg_signature, timestamp or nonce")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return _refuse(request, 413, "body too large")
        try:
            envelope = parse_envelope(body)
            xml = self._crypto.decrypt_message(q["msg_signature"], q["timestamp"], q["nonce"], envelope.encrypt)
            msg = parse_message(xml)
        except CryptoError as exc:
            return _refuse(request, 400 if isinstance(exc, DecryptError) else 403, str(exc))
        except MessageError as exc:
            return _refuse(request, 400, str(exc))
        if msg.agent_id and msg.agent_id != self._agent_id:
            log.warning("callback: ignored a message for agent %s (this app is %s)", msg.agent_id, self._agent_id)
            return web.Response(text="")
        if msg.is_event:
            log.debug("callback: event %s from %s ignored", msg.event, msg.from_user)
            return web.Response(text="")
        new = Inbound(
            dedupe_key=msg.dedupe_key,
            user_id=msg.from_user,
            msg_type=msg.msg_type,
            content=msg.content,
            payload={k: getattr(msg, k) for k in _PAYLOAD_FIELDS if getattr(msg, k)},
        )
        if await self._intake(self._channel, new) is None:
            log.info("callback: duplicate %s from %s acknowledged", msg.dedupe_key, msg.from_user)
        return web.Response(text="")

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ai/callback", self.verify_url)
        app.router.add_post("/ai/callback", self.receive)
