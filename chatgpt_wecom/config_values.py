"""What a configuration value may hold when it travels in an HTTP header, a URL or a host name.

Checked once at start-up, so a key pasted with a full-width letter is one config error naming the key — not an
exception deep in the HTTP client at the first question. The checks raise ValueError with a message that names
the problem and its position, never the value (these are often secrets).
"""

from __future__ import annotations

import re
import unicodedata

_DNS_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_PATH_BREAKERS = frozenset("/?#%\\")


def _kind(char: str) -> str:
    if not char.isascii():
        return "a non-ASCII character"
    return "a space" if char == " " else "a control character"


def header_value(value: str) -> str:
    """`value` without surrounding whitespace; ValueError unless what remains is printable ASCII without spaces
    (what an HTTP header, a bearer token or an api-key may hold)."""
    value = value.strip()
    for position, char in enumerate(value, start=1):
        if not "!" <= char <= "~":
            hint = " (a full-width letter or space pasted from a document? type it again)" if ord(char) > 127 else ""
            raise ValueError(
                f"must be printable ASCII without spaces, but holds {_kind(char)} at position {position}{hint}"
            )
    return value


def no_controls(value: str) -> str:
    """`value` stripped; ValueError if a line break or other control character is left inside."""
    value = value.strip()
    for position, char in enumerate(value, start=1):
        if unicodedata.category(char) == "Cc":
            raise ValueError(f"holds a line break or other control character at position {position}")
    return value


def url_text(value: str) -> str:
    """`value` (stripped already); ValueError if a space or control character is inside (a URL has none)."""
    for position, char in enumerate(value, start=1):
        if char.isspace() or unicodedata.category(char) == "Cc":
            raise ValueError(f"must be a URL without spaces or control characters (one at position {position})")
    return value


def url_segment(value: str) -> str:
    """`value` stripped; ValueError unless it can stand as one segment of a URL's path (an Azure deployment)."""
    value = value.strip()
    for position, char in enumerate(value, start=1):
        if not "!" <= char <= "~" or char in _PATH_BREAKERS:
            what = f"'{char}'" if char in _PATH_BREAKERS else _kind(char)
            raise ValueError(
                f"must be a name (letters, digits, '-', '_', '.'), but holds {what} at position {position}"
            )
    return value


def dns_label(value: str, suffix: str) -> str:
    """`value` stripped; ValueError unless it is one DNS label (the `{name}` of `{name}{suffix}`)."""
    value = value.strip()
    if value and not _DNS_LABEL.fullmatch(value):
        raise ValueError(f"must be only the name: letters, digits and '-' (the part before {suffix})")
    return value


def listen_address(value: str) -> tuple[str, int]:
    """`host:port` (`[::1]:port` for IPv6) as the host and the port; ValueError naming what is wrong."""
    host, sep, port = value.strip().rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep or not host or any(c.isspace() or c in "[]/" for c in host) or not port.isdecimal():
        raise ValueError("must be host:port, e.g. 127.0.0.1:9464")
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port {int(port)} is not between 1 and 65535")
    return host, int(port)
