"""The channels this daemon knows, and which of them a configuration turns on.

The one module outside a channel's folder that imports it: everything else speaks to `Channel` (base.py). A new
channel is a folder under channels/ and one line in `CHANNELS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Channel
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from chatgpt_wecom.daemon.channels.wecom import check as wecom_check
from chatgpt_wecom.daemon.channels.wecom.channel import WeComApp

Misconfiguration = Callable[[str, str, str], None]  # (what, message, hint)

CHANNELS: tuple[type[WeComApp], ...] = (WeComApp,)  # and the connection channels, in the order they start
CHECKS = {WeComApp.name: wecom_check.check}  # `chatgpt-wecom check`: each channel's one call to its platform


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
