"""The WeCom callback: verify, decrypt, parse, persist, ack — the answer goes out later through message/send.

GET answers WeCom's URL check with the decrypted echostr. POST acks with 200 and an empty body as soon as the
message is committed to the inbox (a retry of the same MsgId is acked and dropped). Anything that is not a
well-formed message from this corp and app is refused with a 4xx, a warning in the log and nothing more.
"""

from __future__ import annotations

import logging

from aiohttp import web

from chatgpt_wecom.daemon.events import preview
from chatgpt_wecom.daemon.keys import SERVICES
from chatgpt_wecom.daemon.store.inbox import NewMessage
from chatgpt_wecom.daemon.wecom.crypto import CryptoError, DecryptError
from chatgpt_wecom.daemon.wecom.messages import MessageError, parse_envelope, parse_message

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # a real envelope is a few KB; anything near this is not from WeCom

_PAYLOAD_FIELDS = ("media_id", "pic_url", "format", "recognition", "event", "event_key")


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


async def verify_url(request: web.Request) -> web.Response:
    """GET: WeCom's URL check. Answer the decrypted echostr as plain text."""
    services = request.app[SERVICES]
    q = _signed_query(request, "msg_signature", "timestamp", "nonce", "echostr")
    if q is None:
        return _refuse(request, 400, "missing msg_signature, timestamp, nonce or echostr")
    try:
        echo = services.crypto.verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
    except CryptoError as exc:
        return _refuse(request, 403 if not isinstance(exc, DecryptError) else 400, str(exc))
    log.info("callback: URL check answered")
    return web.Response(text=echo, content_type="text/plain")


async def receive(request: web.Request) -> web.Response:
    """POST: a message or event. 200 with an empty body once it is safely stored."""
    services = request.app[SERVICES]
    q = _signed_query(request, "msg_signature", "timestamp", "nonce")
    if q is None:
        return _refuse(request, 400, "missing msg_signature, timestamp or nonce")
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _refuse(request, 413, "body too large")
    try:
        envelope = parse_envelope(body)
        xml = services.crypto.decrypt_message(q["msg_signature"], q["timestamp"], q["nonce"], envelope.encrypt)
        msg = parse_message(xml)
    except CryptoError as exc:
        return _refuse(request, 400 if isinstance(exc, DecryptError) else 403, str(exc))
    except MessageError as exc:
        return _refuse(request, 400, str(exc))
    if msg.agent_id and msg.agent_id != str(services.settings.agent_id):
        log.warning(
            "callback: ignored a message for agent %s (this app is %s)",
            msg.agent_id,
            services.settings.agent_id,
        )
        return web.Response(text="")
    if msg.is_event:
        log.debug("callback: event %s from %s ignored", msg.event, msg.from_user)
        return web.Response(text="")
    new = NewMessage(
        dedupe_key=msg.dedupe_key,
        user_id=msg.from_user,
        msg_type=msg.msg_type,
        content=msg.content,
        received_at=services.tuning.clock(),
        payload={k: getattr(msg, k) for k in _PAYLOAD_FIELDS if getattr(msg, k)},
    )
    inbox_id = await services.inbox.add(new)
    if inbox_id is None:
        log.info("callback: duplicate %s from %s acknowledged", msg.dedupe_key, msg.from_user)
        return web.Response(text="")
    services.bus.publish(
        "message.received", user=msg.from_user, inbox_id=inbox_id, msg_type=msg.msg_type, text=preview(msg.content)
    )
    services.dispatcher.submit(msg.from_user, inbox_id)
    return web.Response(text="")


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if not services.ready:
        state = "stopping" if services.stopping.is_set() else "starting"
        return web.json_response({"status": state}, status=503)
    return web.json_response({"status": "ok"})


def add_routes(app: web.Application) -> None:
    """/healthz, and the callback at /ai/callback and — like the Go project — at any other path."""
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/ai/callback", verify_url)
    app.router.add_post("/ai/callback", receive)
    app.router.add_get("/{tail:.*}", verify_url)
    app.router.add_post("/{tail:.*}", receive)
