"""The channels this daemon knows, and which of them a configuration turns on.

The one module outside a channel's folder that imports it: everything else speaks to `Channel` (base.py). A new
channel is a folder under channels/ and one line in `CHANNELS`.
"""

from __future__ import annotations

from collections.abc import Callable

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Channel
from chatgpt_wecom.daemon.channels.retry import RetryPolicy
from chatgpt_wecom.daemon.channels.wecom.channel import WeComApp

Misconfiguration = Callable[[str, str, str], None]  # (what, message, hint)

CHANNELS: tuple[type[WeComApp], ...] = (WeComApp,)


def configured_channels(
    settings: Settings, http: aiohttp.ClientSession, retry: RetryPolicy, misconfigured: Misconfiguration
) -> list[Channel]:
    """A channel for every one whose credentials are set, in `CHANNELS` order."""
    return [kind(settings, http, retry, misconfigured) for kind in CHANNELS if kind.configured(settings)]


def max_body(channels: list[Channel]) -> int:
    """The largest request body any channel on HTTP takes (the public app's limit)."""
    return max((getattr(c, "max_body", 0) for c in channels), default=0) or 64 * 1024
