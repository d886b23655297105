"""Images by their bytes: what kind a file is (the one sniffer), its file extension, reading a stored one."""

from __future__ import annotations

import asyncio
from pathlib import Path

from chatgpt_wecom.daemon.media.errors import MediaError

_EXTENSIONS = {"image/png": ".png", "image/jpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp"}


def image_kind(data: bytes) -> str | None:
    """MIME type of a JPEG, PNG, GIF or WebP image from its magic bytes, or ``None`` if not one of those."""
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith((b"GIF87a", b"GIF89a")):
        return "image/gif"
    if len(data) >= 12 and data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def extension(content_type: str) -> str:
    return _EXTENSIONS.get(content_type, ".bin")


async def read_image(path: str) -> tuple[bytes, str]:
    """A stored picture and its MIME type; raises MediaError when it is gone or not an image."""
    try:
        data = await asyncio.to_thread(Path(path).read_bytes)
    except OSError:
        raise MediaError("the picture is no longer stored") from None
    kind = image_kind(data)
    if kind is None:
        raise MediaError("the stored picture is not an image")
    return data, kind
