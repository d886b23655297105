"""The WeCom self-built app (自建应用) as a channel: signed XML callbacks in, `message/send` out.

Private chats only (the app cannot sit in groups): a chat is the user's own id. What WeCom needs for a resend to
be dropped rather than shown twice (api.py: the same request JSON within its duplicate-check interval) comes from
the part's `variant`: interval = 1800 s − variant, so every try of a part is the same request and equal parts
differ. An image is uploaded at its first try and the media_id reused by later tries while WeCom keeps it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web

from chatgpt_wecom.config import Settings, redact_userinfo
from chatgpt_wecom.daemon.channels.base import (
    Capabilities,
    Channel,
    Intake,
    MediaUnavailable,
    Misconfigured,
    Outgoing,
    Rejected,
    RetryLater,
)
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from chatgpt_wecom.daemon.channels.wecom import egress
from chatgpt_wecom.daemon.channels.wecom.api import (
    DUPLICATE_CHECK_INTERVAL,
    MEMBER_RATES,
    WeComAPIError,
    WeComClient,
    WeComConfigError,
    WeComRateLimitedError,
    WeComRejectedError,
)
from chatgpt_wecom.daemon.channels.wecom.callback import MAX_BODY, Callback, is_signed
from chatgpt_wecom.daemon.channels.wecom.crypto import WeComCrypto
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.images import extension, read_image
from chatgpt_wecom.daemon.pipeline.pacing import Rate

log = logging.getLogger(__name__)

TEXT_LIMIT = 2048  # bytes of UTF-8 in one text or markdown message (errcode 45002 beyond)
MEDIA_REUSE = 2 * 24 * 3600.0  # an uploaded image's media_id is reused this long (WeCom keeps it 3 days)
MIN_INTERVAL = 60  # the smallest duplicate-check interval a part gets, however many equal parts came before

Misconfiguration = Callable[[str, str, str], None]  # (what, message, hint): the owner reports it to the operator


class WeComApp(Channel):
    name = "wecom"
    namespace = "wecom"
    capabilities = Capabilities(
        text_limit=TEXT_LIMIT,
        formats=frozenset({"markdown", "text"}),
        streams_in_place=False,
        sends_unprompted=True,
        media_in=frozenset({"voice", "image"}),
        media_out=frozenset({"image"}),
        rates=tuple(Rate(n, s) for n, s in MEMBER_RATES),
    )
    max_body = MAX_BODY

    def __init__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        retry: RetryPolicy,
        misconfigured: Misconfiguration,
        connection: ConnectionPolicy | None = None,  # it has none: WeCom calls it
    ) -> None:
        super().__init__()
        self._settings = settings
        self._own_http = egress.session(settings.wecom_proxy) if settings.wecom_proxy else None  # fixed-IP egress
        http = self._own_http or http
        self.crypto = WeComCrypto(
            settings.receive_msg_token.get_secret_value(), settings.receive_msg_key.get_secret_value(), settings.corp_id
        )
        self.client = WeComClient(
            http,
            api_base=settings.wecom_api_base,
            corp_id=settings.corp_id,
            agent_id=settings.agent_id,
            secret=settings.agent_secret.get_secret_value(),
            retry=retry,
            on_config_error=lambda exc: misconfigured(f"wecom {exc.errcode}", f"wecom: {exc}", exc.hint),
        )
        self._callback: Callback | None = None
        self.state.went_up()  # an HTTP channel is up while the daemon listens

    @staticmethod
    def configured(settings: Settings) -> bool:
        return bool(settings.corp_id and settings.agent_secret.get_secret_value())

    def add_routes(self, app: web.Application, intake: Intake) -> None:
        self._callback = Callback(self, self.crypto, self._settings.agent_id, intake)
        self._callback.add_routes(app)

    def claims(self, request: web.Request) -> bool:
        return is_signed(request)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        assert self._callback is not None
        return await self._callback.handle(request)

    async def send(self, message: Outgoing) -> str | None:
        interval = max(MIN_INTERVAL, DUPLICATE_CHECK_INTERVAL - message.variant)
        try:
            if message.kind != "image":
                markdown = message.kind == "markdown"
                await self.client.send_message(
                    message.user_id, message.content, markdown=markdown, duplicate_check_interval=interval
                )
                return None
            media_id = message.media_ref
            if media_id is None or message.media_at is None or time.time() - message.media_at > MEDIA_REUSE:
                data, content_type = await read_image(message.content)
                filename = f"image{extension(content_type)}"
                media_id = await self.client.upload_media("image", data, filename, content_type)
            await self.client.send_image(message.user_id, media_id, duplicate_check_interval=interval)
            return media_id
        except MediaError as exc:
            raise Rejected(str(exc)) from None
        except WeComConfigError as exc:
            raise Misconfigured(str(exc), exc.hint) from None
        except WeComRateLimitedError as exc:
            raise RetryLater(str(exc), slow_down=True) from None
        except WeComRejectedError as exc:
            raise Rejected(str(exc)) from None
        except WeComAPIError as exc:
            raise RetryLater(str(exc)) from None

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        try:
            return await self.client.download_media(ref)
        except WeComAPIError as exc:
            raise MediaUnavailable(str(exc)) from None

    def detail(self) -> dict[str, Any]:
        """What status shows of the app: where its API is, which app, and the access_token cache."""
        s = self._settings
        facts: dict[str, Any] = {
            "api_base": redact_userinfo(s.wecom_api_base), "corp_id": s.corp_id, "agent_id": s.agent_id,
            "egress": egress.describe(s.wecom_proxy), "token": dataclasses.asdict(self.client.token_state()),
        }  # fmt: skip
        if self.client.seen_ip:
            facts["wecom_saw_ip"] = self.client.seen_ip  # what to put on the trusted-IP list
        return facts

    def forget_errors(self) -> None:
        self.client.clear_config_error()

    async def stop(self) -> None:
        if self._own_http is not None:
            await self._own_http.close()
