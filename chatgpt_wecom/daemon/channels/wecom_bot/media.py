"""Media of the AI bot: pictures users send (download within 5 min, decrypt with the message's aeskey), and images
it sends (chunked upload → media_id, valid 3 days).

A picture is fetched when its message arrives — its URL lives 5 minutes — and kept in a small in-memory cache until
the pipeline asks for it; after a restart within those 5 minutes it is fetched again from the reference, which
carries the URL and aeskey (`ref`).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from chatgpt_wecom.daemon.channels.base import MediaUnavailable
from chatgpt_wecom.daemon.channels.wecom_bot import protocol
from chatgpt_wecom.daemon.channels.wecom_bot.protocol import Received
from chatgpt_wecom.daemon.media.images import image_kind

MAX_DOWNLOAD = 20 << 20  # bytes of one picture, encrypted
CACHE_ITEMS = 64  # pictures kept between their arrival and the pipeline's turn

Request = Callable[[dict[str, Any]], Awaitable[Received]]


def ref(url: str, aeskey: str) -> str:
    """A picture's reference (the payload's media_id): what it takes to fetch it again."""
    return f"{aeskey} {url}"


class Pictures:
    def __init__(self, http: aiohttp.ClientSession, timeout: float) -> None:
        self._http = http
        self._timeout = timeout
        self._cache: collections.OrderedDict[str, tuple[bytes, str]] = collections.OrderedDict()

    async def prefetch(self, media_ref: str) -> None:
        """Fetch at arrival; a failure is left for `fetch` to meet again (and report)."""
        with contextlib.suppress(MediaUnavailable):
            await self.fetch(media_ref)

    async def fetch(self, media_ref: str) -> tuple[bytes, str]:
        """The decrypted bytes and their MIME type; MediaUnavailable."""
        if (found := self._cache.get(media_ref)) is not None:
            return found
        aeskey, _, url = media_ref.partition(" ")
        if not aeskey or not url.startswith(("http://", "https://")):
            raise MediaUnavailable("not a picture reference of the AI bot")
        try:
            timeout = aiohttp.ClientTimeout(total=self._timeout)
            async with self._http.get(url, timeout=timeout) as resp:
                if resp.status != 200:
                    raise MediaUnavailable(f"the picture's download answered HTTP {resp.status} (its URL lives 5 min)")
                data = await resp.content.read(MAX_DOWNLOAD + 1)
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise MediaUnavailable(f"the picture could not be downloaded ({type(exc).__name__})") from None
        if len(data) > MAX_DOWNLOAD:
            raise MediaUnavailable(f"the picture is larger than {MAX_DOWNLOAD >> 20} MB")
        try:
            plain = protocol.decrypt_media(data, aeskey)
        except ValueError as exc:
            raise MediaUnavailable(f"the picture did not decrypt: {exc}") from None
        kind = image_kind(plain) or "application/octet-stream"
        self._cache[media_ref] = (plain, kind)
        while len(self._cache) > CACHE_ITEMS:
            self._cache.popitem(last=False)
        return plain, kind


async def upload(request: Request, kind: str, filename: str, data: bytes) -> str:
    """Upload `data` in chunks (init → chunk × n → finish); its media_id. Raises what `request` raises, or
    ValueError when it is too large."""
    init, chunks = protocol.upload_frames(kind, filename, data)
    ack = await request(protocol.frame(protocol.UPLOAD_INIT, protocol.new_req_id(protocol.UPLOAD_INIT), init))
    upload_id = str(ack.body.get("upload_id") or "")
    if not upload_id:
        raise ValueError("the upload was not given an upload_id")
    sem = asyncio.Semaphore(2)  # more chunks at once reportedly end in a system error

    async def chunk(index: int, b64: str) -> None:
        async with sem:
            body = {"upload_id": upload_id, "chunk_index": index, "base64_data": b64}
            await request(protocol.frame(protocol.UPLOAD_CHUNK, protocol.new_req_id(protocol.UPLOAD_CHUNK), body))

    await asyncio.gather(*(chunk(i, c) for i, c in enumerate(chunks)))
    done = await request(
        protocol.frame(protocol.UPLOAD_FINISH, protocol.new_req_id(protocol.UPLOAD_FINISH), {"upload_id": upload_id})
    )
    media_id = str(done.body.get("media_id") or "")
    if not media_id:
        raise ValueError("the upload finished without a media_id")
    return media_id
