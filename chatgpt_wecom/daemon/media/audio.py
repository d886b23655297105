"""WeCom voice (AMR-NB, 8 kHz) → WAV for speech-to-text.

Decoding uses PyAV, whose wheels bundle FFmpeg (including the native ``amrnb`` decoder), so nothing is
fetched or shelled out at run time. Work is bounded: input ≤ 2 MB (WeCom's voice limit), decoded audio
≤ 120 s (checked while decoding, so a tiny file that claims hours stops early), and the in-memory demuxer
ends at the end of the input.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import wave
from collections.abc import Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from chatgpt_wecom.daemon.media.errors import MediaError

if TYPE_CHECKING:
    from av.audio.frame import AudioFrame

__all__ = [
    "MAX_VOICE_BYTES",
    "MAX_VOICE_SECONDS",
    "TARGET_RATE",
    "Audio",
    "duration_seconds",
    "voice_for_transcription",
    "voice_for_transcription_async",
]

MAX_VOICE_BYTES = 2 * 1024 * 1024
MAX_VOICE_SECONDS = 120.0
TARGET_RATE = 16_000
_SAMPLE_WIDTH = 2  # pcm_s16le, mono
_MAX_BAD_PACKETS = 3


@dataclass(frozen=True, slots=True)
class Audio:
    """Audio ready to upload to a transcription API (e.g. as the ``file`` part of whisper-1)."""

    data: bytes
    filename: str
    content_type: str


def _check_input(data: bytes) -> None:
    if not data:
        raise MediaError("voice message is empty")
    if len(data) > MAX_VOICE_BYTES:
        raise MediaError(f"voice message too large ({len(data)} bytes > {MAX_VOICE_BYTES})")


def _frames(data: bytes, source_format: str) -> Generator[AudioFrame, None, None]:
    """Yield the decoded audio frames of ``data``; FFmpeg failures become :class:`MediaError`.

    FFmpeg probes the bytes first, so anything it decodes is accepted; ``source_format`` (WeCom's ``<Format>``,
    e.g. ``amr``) is used as the demuxer name only when probing fails and FFmpeg knows that name.
    """
    import av  # noqa: PLC0415 - PyAV/FFmpeg import costs ~0.5 s: paid on the first voice message, not at start

    hint = source_format.strip().lower()
    try:  # FFmpeg's probe recognises AMR's "#!AMR" magic (and every format with a header) at full score
        container = av.open(io.BytesIO(data), mode="r")
    except av.FFmpegError as exc:
        if hint not in av.formats_available:
            raise MediaError(f"not a decodable audio file ({exc.strerror or 'unknown error'})") from exc
        try:  # headerless data: trust WeCom's <Format> hint
            container = av.open(io.BytesIO(data), mode="r", format=hint)
        except av.FFmpegError as exc2:
            raise MediaError(f"not a decodable audio file ({exc2.strerror or 'unknown error'})") from exc2
    with container:
        if not container.streams.audio:
            raise MediaError("no audio stream in voice message")
        bad = 0  # like the ffmpeg CLI, skip a few bad packets (e.g. a truncated last AMR frame) but not garbage
        try:
            for packet in container.demux(container.streams.audio[0]):
                try:
                    yield from packet.decode()
                except av.FFmpegError:
                    bad += 1
                    if bad > _MAX_BAD_PACKETS:
                        raise
        except av.FFmpegError as exc:
            raise MediaError(f"corrupt audio data ({exc.strerror or 'unknown error'})") from exc


def _pcm16k(data: bytes, source_format: str) -> bytes:
    """Decode, downmix and resample to 16 kHz mono s16le; stop as soon as the audio exceeds the limit."""
    import av  # noqa: PLC0415

    _check_input(data)
    limit = int(MAX_VOICE_SECONDS * TARGET_RATE) * _SAMPLE_WIDTH
    resampler = av.AudioResampler(format="s16", layout="mono", rate=TARGET_RATE)
    pcm = bytearray()
    frames = _frames(data, source_format)
    for frame in itertools.chain(frames, [None]):  # None flushes the resampler
        for out in resampler.resample(frame):
            pcm += bytes(out.planes[0])[: out.samples * _SAMPLE_WIDTH]
        if len(pcm) > limit:
            frames.close()
            raise MediaError(f"voice message too long (> {MAX_VOICE_SECONDS:g} s)")
    if not pcm:
        raise MediaError("voice message contains no audio")
    return bytes(pcm)


def voice_for_transcription(data: bytes, source_format: str = "amr") -> Audio:
    """Convert a voice message (WeCom AMR-NB, or anything FFmpeg decodes) to 16 kHz mono 16-bit WAV.

    WAV is accepted by whisper-1 and every OpenAI-compatible STT server; at the 120 s cap it is ≤ 3.9 MB,
    well under the API's 25 MB limit. Raises :class:`MediaError` on empty, > 2 MB, > 120 s or undecodable input.
    """
    pcm = _pcm16k(data, source_format)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(_SAMPLE_WIDTH)
        wav.setframerate(TARGET_RATE)
        wav.writeframes(pcm)
    return Audio(buf.getvalue(), "voice.wav", "audio/wav")


async def voice_for_transcription_async(data: bytes, source_format: str = "amr") -> Audio:
    """:func:`voice_for_transcription` in a worker thread, so the event loop is not blocked."""
    return await asyncio.to_thread(voice_for_transcription, data, source_format)


def duration_seconds(data: bytes, source_format: str = "amr") -> float:
    """Exact duration of an audio file, by decoding it (AMR decodes at > 100x real time)."""
    _check_input(data)
    return sum(frame.samples / frame.sample_rate for frame in _frames(data, source_format))
