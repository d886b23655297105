"""Which way WeCom API calls leave: directly, or through `wecom_proxy` (http:// or socks5://).

WeCom answers an app's calls only from an IP on its trusted-IP list (企业可信IP), which must be a fixed address;
a server without one sends WeCom's calls through a proxy that has one. Every WeCom call of the app then goes
through it — the channel's own session — and the model's calls do not (they have `http_proxy`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

import aiohttp
from aiohttp_socks import ProxyConnector

from chatgpt_wecom.config import redact_userinfo


def session(proxy: str) -> aiohttp.ClientSession:
    """A session whose every request goes through `proxy` (SOCKS through aiohttp-socks, HTTP through aiohttp)."""
    if urlsplit(proxy).scheme.startswith("socks"):
        return aiohttp.ClientSession(connector=ProxyConnector.from_url(proxy))
    return aiohttp.ClientSession(proxy=proxy)


def describe(proxy: str) -> str:
    """How WeCom calls leave, for status and check lines (a password in the proxy URL is masked)."""
    return f"through {redact_userinfo(proxy)}" if proxy else "directly"
