"""Signed, expiring links to one user's conversation history (`#查对话`).

A token is `base64url(payload) + "." + base64url(HMAC-SHA256(key, purpose + payload))`, unpadded, where the
payload is the JSON `{"u": user, "e": expiry}` (Unix seconds). The MAC covers the payload exactly as sent, so
any change to either half — or a token made with another key — fails; so does one past its expiry. Whatever
the cause, `verify` raises the one `InvalidLink`, whose message is for the log only (never the client).

The key is 32 random bytes in `data_dir/history-link.key` (mode 0600), made on first use and kept across
restarts, so links survive a restart; deleting the file revokes every link issued so far.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.live_settings import LiveSettings

KEY_FILE = "history-link.key"
KEY_BYTES = 32
DEFAULT_TTL = 24 * 3600.0
MAX_TOKEN = 2048  # a real token is ~100 characters; refuse anything huge before doing any work
_PURPOSE = b"chatgpt-wecom history link v1\n"  # domain separation: this key signs nothing else


class InvalidLink(Exception):
    """A link that is malformed, forged, altered or expired. The message says which, for the log only."""


@dataclass(frozen=True, slots=True)
class LinkClaims:
    """What a valid token names: the user and when the link stops working (Unix seconds)."""

    user: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)


class LinkSigner:
    """Makes and checks history tokens with one secret key; `clock` is "now" (injected by tests)."""

    def __init__(self, key: bytes, clock: Callable[[], float] = time.time) -> None:
        if len(key) < 16:
            raise ValueError("a link key needs at least 16 bytes")
        self._key = key
        self._clock = clock

    @classmethod
    def from_data_dir(cls, data_dir: Path, clock: Callable[[], float] = time.time) -> LinkSigner:
        """The signer for the key in `data_dir/history-link.key`, creating the key (0600) if there is none."""
        return cls(load_or_create_key(data_dir / KEY_FILE), clock)

    def _mac(self, payload: str) -> str:
        return _b64(hmac.new(self._key, _PURPOSE + payload.encode("ascii"), hashlib.sha256).digest())

    def token(self, user: str, ttl: float = DEFAULT_TTL) -> str:
        """A URL-safe token naming `user`, valid for `ttl` seconds from now."""
        if not user:
            raise ValueError("a history link names one user")
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        body = json.dumps({"u": user, "e": int(self._clock() + ttl)}, separators=(",", ":"))
        payload = _b64(body.encode("utf-8"))
        return f"{payload}.{self._mac(payload)}"

    def claims(self, token: str) -> LinkClaims:
        """The user and expiry a valid, unexpired token names; InvalidLink otherwise."""
        if not token or len(token) > MAX_TOKEN or not token.isascii() or token.count(".") != 1:
            raise InvalidLink("malformed token")
        payload, mac = token.split(".")
        if not hmac.compare_digest(self._mac(payload).encode("ascii"), mac.encode("ascii")):
            raise InvalidLink("bad signature")
        try:
            data = json.loads(_unb64(payload))
        except (binascii.Error, ValueError):
            raise InvalidLink("malformed payload") from None
        user, expires = (data.get("u"), data.get("e")) if isinstance(data, dict) else (None, None)
        if not isinstance(user, str) or not user or type(expires) is not int:
            raise InvalidLink("malformed payload")
        if self._clock() >= expires:
            raise InvalidLink("expired")
        return LinkClaims(user, expires)

    def verify(self, token: str) -> str:
        """The user a valid, unexpired token names; InvalidLink otherwise."""
        return self.claims(token).user


def history_url(service_url: str, token: str) -> str:
    """The page's address under the daemon's public base URL (`service_url`)."""
    return f"{service_url.rstrip('/')}/history/{token}"


class HistoryLinks:
    """A user's history link, and the `#查对话` reply carrying it, with the `service_url` and
    `history_link_hours` in force (a reload may change either)."""

    def __init__(self, signer: LinkSigner, live: LiveSettings) -> None:
        self._signer = signer
        self._live = live

    def link(self, user: str) -> str | None:
        """A signed, expiring link to `user`'s history page; None without service_url."""
        s = self._live.settings
        if not s.service_url:
            return None
        return history_url(s.service_url, self._signer.token(user, ttl=s.history_link_hours * 3600))

    def reply(self, user: str) -> str | None:
        """The #查对话 reply: a signed, expiring link to `user`'s history page; None without service_url."""
        url = self.link(user)
        return None if url is None else replies.history_link(user, url, self._live.settings.history_link_hours)


def load_or_create_key(path: Path) -> bytes:
    """Read the key at `path`, or create it atomically: written in full to a private temporary file, then
    linked into place, so no reader ever sees a partial key and concurrent starters agree on one key."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(secrets.token_bytes(KEY_BYTES))
                f.flush()
                os.fsync(f.fileno())
            with contextlib.suppress(FileExistsError):  # another process won the race: use its key
                _link(tmp, path)
        finally:
            os.unlink(tmp)
    key = path.read_bytes()
    if len(key) != KEY_BYTES:
        raise ValueError(f"{path} is damaged ({len(key)} bytes, not {KEY_BYTES}); delete it to make a new key")
    return key


def _link(tmp: str, path: Path) -> None:
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: exclusive create, then the same bytes
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(Path(tmp).read_bytes())
