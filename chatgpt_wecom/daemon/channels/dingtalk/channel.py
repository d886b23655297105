"""DingTalk (钉钉) app robots as one channel: every configured app (credential), Stream mode or HTTP mode.

Receiving: each app's Stream connection (stream.py), or signed POSTs (http.py); the message (messages.py) is
committed to the inbox before the transport is acknowledged. The app a message came by answers it.

Answering (`send`): through the message's sessionWebhook while it is valid (until a minute before
`sessionWebhookExpiredTime`; no API quota used), checking the errcode in the body; when it has expired (or
refuses: errcode 300001), or after a restart past its expiry, or for a message nobody asked for, through
OpenAPI — `oToMessages/batchSend` to the person in a private chat, `groupMessages/send` to the group. In a group
the first message of an answer @-mentions the asker (one notification per answer, not one per part). An image
(#图片) is uploaded once (`media/upload`); its media_id is kept for later tries and shown as a markdown image
(webhook) or `sampleImageMsg` (OpenAPI). Splitting, pacing, retries and durability are the pipeline's.

Text limit: 6,000 bytes of UTF-8 per message. DingTalk takes about 20,000 bytes per webhook body and 15,000 per
group msgParam — a JSON string inside JSON, where escaping can double a text's size — so 6,000 stays under both
with the title and the @mention added.

With `stream_mode: true` and a `card_template_id`, an answer the model streams grows in one AI card (card.py;
3,000 bytes per card, the rest in messages) and part 0 finishes it; any card failure falls back to messages.
Off by default: every update is an OpenAPI call (QPS and the monthly quota of standard-edition orgs).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
from aiohttp import web

from chatgpt_wecom.config import Settings, redact_userinfo
from chatgpt_wecom.daemon.channels.base import (
    Capabilities,
    Channel,
    Intake,
    LiveReply,
    MediaUnavailable,
    Misconfigured,
    Origin,
    Outgoing,
    Rejected,
    RetryLater,
)
from chatgpt_wecom.daemon.channels.dingtalk.api import (
    DingTalkClient,
    DingTalkConfigError,
    DingTalkError,
    DingTalkRateLimited,
    DingTalkRejected,
    WebhookRefused,
)
from chatgpt_wecom.daemon.channels.dingtalk.card import CARD_TEXT_LIMIT, CardReply
from chatgpt_wecom.daemon.channels.dingtalk.http import MAX_BODY, Callback, is_signed
from chatgpt_wecom.daemon.channels.dingtalk.messages import GROUP, MessageError, parse, parse_media_ref
from chatgpt_wecom.daemon.channels.dingtalk.stream import StreamLink
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.images import extension, read_image
from chatgpt_wecom.daemon.pipeline.pacing import Rate

log = logging.getLogger(__name__)

TEXT_LIMIT = 6000
WEBHOOK_MARGIN_MS = 60_000  # a sessionWebhook is not used in the last minute of its life
CARD_INTERVAL = 1.0  # seconds between two updates of one AI card (at the default ConnectionPolicy.frame_interval)
MAX_CARDS = 1000  # cards kept waiting for their part 0 (one per answer in progress)
TIME = "%Y-%m-%d %H:%M:%S"  # `since` in status, in the configured time zone
TITLE_CHARS = 20  # the markdown title: what the notification and the chat list show
_MARKUP = re.compile(r"[#>*`_\[\]!]+")

Misconfiguration = Callable[[str, str, str], None]


def title_of(text: str) -> str:
    """A markdown message's title: its first line without markup, cut short."""
    for line in text.splitlines():
        plain = _MARKUP.sub("", line).strip(" -")
        if plain:
            return plain[:TITLE_CHARS] + ("…" if len(plain) > TITLE_CHARS else "")
    return "回复"


class DingTalk(Channel):
    name = "dingtalk"
    namespace = "dingtalk"
    capabilities = Capabilities(
        text_limit=TEXT_LIMIT,
        formats=frozenset({"markdown", "text"}),
        streams_in_place=False,
        sends_unprompted=True,
        media_in=frozenset({"voice", "image"}),
        media_out=frozenset({"image"}),
        rates=(Rate(20, 60.0),),  # per conversation: the robots' 20 messages a minute (errcode 130101 beyond)
    )
    max_body = MAX_BODY

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        retry: RetryPolicy,
        misconfigured: Misconfiguration,
        connection: ConnectionPolicy,
    ) -> None:
        super().__init__()
        self._settings = settings
        self._mode = settings.run_mode
        self._intake: Intake | None = None

        def reporter(client_id: str) -> Callable[[DingTalkConfigError], None]:
            return lambda exc: misconfigured(f"dingtalk {client_id} {exc.api}", str(exc), exc.hint)

        self.clients = {
            app.client_id: DingTalkClient(
                http,
                client_id=app.client_id,
                client_secret=app.client_secret.get_secret_value(),
                api_base=settings.dingtalk_api_base,
                oapi_base=settings.dingtalk_oapi_base,
                retry=retry,
                on_config_error=reporter(app.client_id),
            )
            for app in settings.credentials
        }
        self._callback = Callback(
            [(a.client_id, a.client_secret.get_secret_value()) for a in settings.credentials], self._take
        )
        self.links: dict[str, StreamLink] = {}
        if self._mode == "stream":
            self.links = {cid: StreamLink(client, http, connection, self._taker(cid), misconfigured, self._changed)
                          for cid, client in self.clients.items()}  # fmt: skip
        else:
            self.state.went_up()  # an HTTP channel is up while the daemon listens
        self._template = settings.card_template_id if settings.stream_mode else ""
        self._card_interval = CARD_INTERVAL * connection.frame_interval / ConnectionPolicy().frame_interval
        self._cards: OrderedDict[str, CardReply] = OrderedDict()  # by the answered message's id, until part 0
        if self._template:
            self.capabilities = dataclasses.replace(DingTalk.capabilities, text_limit=CARD_TEXT_LIMIT,
                                                    streams_in_place=True)  # fmt: skip
        elif settings.stream_mode:
            log.warning("dingtalk: stream_mode needs card_template_id (an AI card template): without it answers are "
                        "markdown messages, the first paragraph at once")  # fmt: skip
        elif settings.card_template_id:
            log.warning("dingtalk: card_template_id is ignored without stream_mode: true")

    @staticmethod
    def configured(settings: Settings) -> bool:
        return settings.dingtalk_on

    # --- receiving --------------------------------------------------------------------------------------
    def add_routes(self, app: web.Application, intake: Intake) -> None:
        self._intake = intake
        if self._mode == "http":
            self._callback.add_routes(app)

    def claims(self, request: web.Request) -> bool:
        return self._mode == "http" and is_signed(request)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        return await self._callback.handle(request)

    async def start(self, intake: Intake) -> None:
        self._intake = intake
        for link in self.links.values():
            link.start()

    async def stop(self) -> None:
        cards, self._cards = list(self._cards.values()), OrderedDict()  # answers the stop cut short
        await asyncio.gather(*(card.abandon() for card in cards), *(link.stop() for link in self.links.values()))

    def _taker(self, client_id: str) -> Callable[[dict[str, Any]], Any]:
        async def take(data: dict[str, Any]) -> None:
            try:
                await self._take(data, client_id)
            except MessageError as exc:
                log.warning("dingtalk: a message by app %s dropped: %s", client_id, exc)

        return take

    async def _take(self, data: Mapping[str, Any], client_id: str) -> None:
        """Store every Inbound of one message; returns once they are committed (then the transport is acked)."""
        assert self._intake is not None, "the daemon has not started this channel"
        for inbound in parse(data, client_id):
            if await self._intake(self, inbound) is None:
                log.info("dingtalk: duplicate %s from %s acknowledged", inbound.dedupe_key[:24], inbound.user_id)

    # --- answering --------------------------------------------------------------------------------------
    def live_reply(self, origin: Origin) -> LiveReply | None:
        """An AI card for the answer to `origin` (with stream_mode and card_template_id), created when the model's
        first words are shown."""
        client = self.clients.get(origin.payload.get("client_id", ""))
        private = origin.payload.get("conversation_type") != GROUP
        if not self._template or client is None or (private and not origin.payload.get("staff_id")):
            return None
        card = CardReply(client, origin, self._template, self._card_interval)
        self._cards[origin.message_id] = card
        while len(self._cards) > MAX_CARDS:
            self._cards.popitem(last=False)
        return card

    async def send(self, message: Outgoing) -> str | None:
        payload: Mapping[str, str] = message.origin.payload if message.origin is not None else {}
        client = self.clients.get(payload.get("client_id", "")) or next(iter(self.clients.values()))
        if message.origin is not None and message.part == 0 and message.kind != "image":
            card = self._cards.pop(message.origin.message_id, None)
            if card is not None and await card.finish(message.content):
                return None
        try:
            media_id = None
            if message.kind == "image":
                media_id = message.media_ref or await self._upload(client, message.content)
            await self._deliver(client, message, payload, media_id)
            return media_id
        except MediaError as exc:
            raise Rejected(str(exc)) from None
        except DingTalkConfigError as exc:
            raise Misconfigured(str(exc), exc.hint) from None
        except DingTalkRateLimited as exc:
            raise RetryLater(str(exc), slow_down=True) from None
        except DingTalkRejected as exc:
            raise Rejected(str(exc)) from None
        except DingTalkError as exc:
            raise RetryLater(str(exc)) from None

    async def _upload(self, client: DingTalkClient, path: str) -> str:
        data, content_type = await read_image(path)
        return await client.upload_image(data, f"image{extension(content_type)}", content_type)

    async def _deliver(
        self, client: DingTalkClient, message: Outgoing, payload: Mapping[str, str], media_id: str | None
    ) -> None:
        kind = payload.get("conversation_type")  # absent: a message nobody asked for, or the operator's playground
        group = kind == GROUP if kind else message.chat not in ("", message.user_id)
        staff = payload.get("staff_id", message.user_id)  # "": DingTalk gave the sender no staffId
        mention = staff if group and message.part == 0 else ""
        webhook, expires = payload.get("session_webhook", ""), int(payload.get("session_webhook_expires") or 0)
        if webhook and time.time() * 1000 < expires - WEBHOOK_MARGIN_MS:
            try:
                await client.webhook(webhook, _webhook_body(message, media_id, mention))
                return
            except WebhookRefused as exc:
                log.info("dingtalk: %s; sending through OpenAPI instead", exc)
        msg_key, msg_param = _api_message(message, media_id)
        if group:
            await client.send_group(payload.get("conversation_id") or message.chat, msg_key, msg_param)
        elif staff and not staff.startswith("anon-"):
            await client.send_private(staff, msg_key, msg_param)
        else:
            raise Rejected("the sender has no staffId and the message's sessionWebhook has expired")

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        try:
            client_id, code = parse_media_ref(ref)
            client = self.clients.get(client_id)
            if client is None:
                raise MediaUnavailable(f"DingTalk app {client_id} is not configured any more")
            return await client.download(code)
        except MessageError as exc:
            raise MediaUnavailable(str(exc)) from None
        except DingTalkError as exc:
            raise MediaUnavailable(str(exc)) from None

    # --- state ------------------------------------------------------------------------------------------
    def _changed(self) -> None:
        states = [link.state for link in self.links.values()]
        up = all(s.connected for s in states)
        if up and not self.state.up:
            self.state.went_up()
        self.state.up = up
        self.state.reconnects = sum(s.reconnects for s in states)
        errors = [s.last_error for s in states if s.last_error]
        self.state.last_error = errors[-1] if errors else None

    def detail(self) -> dict[str, Any]:
        """Each app: connected (None in HTTP mode: DingTalk calls in), since when (local time), reconnects, last
        error, whether a token is cached. Never a secret."""
        apps: dict[str, Any] = {}
        for cid, client in self.clients.items():
            link = self.links.get(cid)
            token = client.token_state()
            shown: dict[str, Any] = {"connected": None, "since": None, "reconnects": 0, "last_error": None}
            if link is not None:
                shown = link.state.shown()
                if shown["since"] is not None:
                    shown["since"] = datetime.fromtimestamp(shown["since"], self._settings.zone).strftime(TIME)
            shown["last_error"] = shown["last_error"] or token.last_error
            apps[cid] = {**shown, "token": "valid" if token.has_token else "none"}
        return {"run_mode": self._mode, "api_base": redact_userinfo(self._settings.dingtalk_api_base), "apps": apps}


def _with_mention(text: str, mention: str) -> str:
    return f"{text}\n\n@{mention}" if mention else text


def _webhook_body(message: Outgoing, media_id: str | None, mention: str) -> dict[str, Any]:
    at = {"at": {"atUserIds": [mention]}} if mention else {}
    if message.kind == "text":
        return {"msgtype": "text", "text": {"content": _with_mention(message.content, mention)}, **at}
    text = f"![]({media_id})" if media_id is not None else message.content
    title = "[图片]" if media_id is not None else title_of(message.content)
    return {"msgtype": "markdown", "markdown": {"title": title, "text": _with_mention(text, mention)}, **at}


def _api_message(message: Outgoing, media_id: str | None) -> tuple[str, dict[str, str]]:
    if media_id is not None:
        return "sampleImageMsg", {"photoURL": media_id}
    if message.kind == "text":
        return "sampleText", {"content": message.content}
    return "sampleMarkdown", {"title": title_of(message.content), "text": message.content}
