"""The channels this daemon knows, and which of them a configuration turns on.

The one module outside a channel's folder that imports it: everything else speaks to `Channel` (base.py). A new
channel is a folder under channels/ and one line in `CHANNELS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Channel
from chatgpt_wecom.daemon.channels.dingtalk import check as dingtalk_check
from chatgpt_wecom.daemon.channels.dingtalk.channel import DingTalk
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from chatgpt_wecom.daemon.channels.wecom import check as wecom_check
from chatgpt_wecom.daemon.channels.wecom.channel import WeComApp
from chatgpt_wecom.daemon.channels.wecom_bot import check as wecom_bot_check
from chatgpt_wecom.daemon.channels.wecom_bot.channel import WeComBot

Misconfiguration = Callable[[str, str, str], None]  # (what, message, hint)


class ChannelKind(Protocol):
    """What the registry needs of a channel class: its name, whether a configuration turns it on, how to build it."""

    @property
    def name(self) -> str: ...

    def __call__(
        self,
        settings: Settings,
        http: aiohttp.ClientSession,
        retry: RetryPolicy,
        misconfigured: Misconfiguration,
        connection: ConnectionPolicy,
        /,
    ) -> Channel: ...

    @staticmethod
    def configured(settings: Settings) -> bool: ...


CHANNELS: tuple[ChannelKind, ...] = (WeComApp, WeComBot, DingTalk)  # in the order they start
CHECKS: dict[str, Callable[[Settings], Awaitable[tuple[bool, str]]]] = {  # `check`: each channel's call to its platform
    WeComApp.name: wecom_check.check,
    WeComBot.name: wecom_bot_check.check,
    DingTalk.name: dingtalk_check.check,
}


def configured_channels(
    settings: Settings,
    http: aiohttp.ClientSession,
    retry: RetryPolicy,
    misconfigured: Misconfiguration,
    connection: ConnectionPolicy | None = None,
) -> list[Channel]:
    """A channel for every one whose credentials are set, in `CHANNELS` order."""
    conn = connection or ConnectionPolicy()
    return [kind(settings, http, retry, misconfigured, conn) for kind in CHANNELS if kind.configured(settings)]


def max_body(channels: list[Channel]) -> int:
    """The largest request body any channel on HTTP takes (the public app's limit)."""
    return max((c.max_body for c in channels), default=0) or 64 * 1024


async def channel_checks(settings: Settings) -> list[tuple[str, bool, str]]:
    """(channel, passed, what was found) for every configured channel, checked at once."""
    names = [kind.name for kind in CHANNELS if kind.configured(settings)]
    verdicts = await asyncio.gather(*(CHECKS[name](settings) for name in names))
    return [(name, ok, detail) for name, (ok, detail) in zip(names, verdicts, strict=True)]
