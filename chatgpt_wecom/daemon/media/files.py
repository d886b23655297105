"""The I/O behind rich messages: drawing images, hearing voice, fetching pictures users send.

Files live under `data_dir`: generated images in `images/`, pictures users sent in `uploads/`, named by the inbox
row they belong to (never by anything a user chose); folders 0700, files 0600.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from chatgpt_wecom.daemon.media.audio import voice_for_transcription_async
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.images import extension, image_kind
from chatgpt_wecom.daemon.model.client import GeneratedImage, ModelClient
from chatgpt_wecom.daemon.store.private import write_private


async def _write(path: Path, data: bytes) -> None:
    await asyncio.to_thread(write_private, path, data)


Fetch = Callable[[str, str], Awaitable[tuple[bytes, str]]]  # (channel, reference) → media a user sent, its MIME type


class RichMedia:
    def __init__(self, data_dir: Path, model: ModelClient, fetch: Fetch) -> None:
        self._data_dir = data_dir
        self._model = model
        self._fetch = fetch

    async def draw(self, prompt: str, inbox_id: int) -> tuple[Path, GeneratedImage]:
        """Generate an image for `prompt` and save it; raises ModelError."""
        image = await self._model.generate_image(prompt)
        path = self._data_dir / "images" / f"{inbox_id}{extension(image.content_type)}"
        await _write(path, image.data)
        return path, image

    async def hear(self, channel: str, media_id: str) -> str:
        """The words of a voice message; raises MediaError (MediaUnavailable: not fetched) or ModelError."""
        data, _ = await self._fetch(channel, media_id)
        audio = await voice_for_transcription_async(data)
        return (await self._model.transcribe(audio.data, audio.filename, audio.content_type)).strip()

    async def fetch_picture(self, channel: str, media_id: str, inbox_id: int) -> Path:
        """Download a picture a user sent and keep it; raises MediaError (MediaUnavailable: not fetched)."""
        data, _ = await self._fetch(channel, media_id)
        kind = image_kind(data)
        if kind is None:
            raise MediaError("the picture is not a JPEG, PNG, GIF or WebP image")
        path = self._data_dir / "uploads" / f"{inbox_id}{extension(kind)}"
        await _write(path, data)
        return path
