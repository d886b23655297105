"""How the channels' HTTP API clients read what came back: a body as a JSON object, a failed request in words."""

from __future__ import annotations

import json
import os
from typing import Any

import aiohttp


def json_object(body: bytes) -> dict[str, Any] | None:
    """``body`` as a JSON object, or None when it is something else (media bytes, HTML, garbage)."""
    if not body.lstrip().startswith(b"{"):
        return None
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def transport_error(exc: aiohttp.ClientError) -> str:
    """What went wrong on the way, in words: "cannot connect to host:port (Connection refused)" — not aiohttp's
    "Cannot connect to host h:p ssl:default [...]", whose ssl part misleads for a plain-http URL."""
    if isinstance(exc, aiohttp.ClientConnectorError) and not isinstance(
        exc, aiohttp.ClientSSLError | aiohttp.ClientConnectorCertificateError
    ):
        os_error = exc.os_error
        reason = os.strerror(os_error.errno) if os_error.errno else str(os_error.strerror or os_error or "")
        what = "the proxy " if isinstance(exc, aiohttp.ClientProxyConnectionError) else ""
        return f"cannot connect to {what}{exc.host}:{exc.port} ({reason or type(os_error).__name__})"
    return f"{type(exc).__name__}: {exc}"
