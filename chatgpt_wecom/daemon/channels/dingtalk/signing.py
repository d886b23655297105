"""DingTalk's HTTP-mode signature (dingtalk-protocol.md §3): `sign = Base64(HmacSHA256(AppSecret, ts + "\n" + secret))`.

The signature covers the timestamp and the secret only, never the body: a captured request could be replayed with
any body within the hour, which is why the receiver also drops a msgId it has seen (the inbox's unique key).
Checks: `timestamp` is unix milliseconds within ±1 hour of now; `sign` equals one configured app's signature
(compared in constant time, every secret tried); the match names the app.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

MAX_SKEW_MS = 3_600_000  # DingTalk: refuse a request whose timestamp is more than an hour from now


def calc_sign(timestamp: str, secret: str) -> str:
    """The `sign` header DingTalk sends with `timestamp` for the app whose AppSecret is `secret`."""
    mac = hmac.new(secret.encode(), f"{timestamp}\n{secret}".encode(), hashlib.sha256)
    return base64.b64encode(mac.digest()).decode()


def verify(timestamp: str, sign: str, secrets: Sequence[str], now_ms: int) -> int | None:
    """The index of the app in `secrets` that signed (`timestamp`, `sign`), or None: unsigned, stale or forged."""
    if not (timestamp and sign and timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 15):
        return None
    if abs(now_ms - int(timestamp)) > MAX_SKEW_MS:
        return None
    given = sign.encode()
    matches = [hmac.compare_digest(calc_sign(timestamp, s).encode(), given) for s in secrets]  # every one tried
    return matches.index(True) if True in matches else None
