"""chatgpt_wecom.daemon.media.audio: AMR → WAV for transcription, and its limits."""

from __future__ import annotations

import array
import io
import math
import wave
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.media import audio as media
from chatgpt_wecom.daemon.media.audio import Audio
from chatgpt_wecom.daemon.media.errors import MediaError

DATA = Path(__file__).resolve().parent.parent.parent / "data"
AMR_MAGIC = b"#!AMR\n"
FIXTURE_SECONDS = 2.24  # 112 AMR-NB frames of 20 ms (espeak-ng "hello, this is a voice message")


@pytest.fixture(scope="module")
def amr() -> bytes:
    return (DATA / "voice_hello.amr").read_bytes()


def _read_wav(audio: Audio) -> tuple[wave._wave_params, bytes]:
    with wave.open(io.BytesIO(audio.data), "rb") as wav:
        return wav.getparams(), wav.readframes(wav.getnframes())


def _wav_bytes(seconds: float, rate: int, channels: int) -> bytes:
    """A 440 Hz tone as 16-bit PCM WAV (the same sample in every channel)."""
    samples = array.array("h")
    for i in range(int(seconds * rate)):
        samples.extend([int(8000 * math.sin(2 * math.pi * 440 * i / rate))] * channels)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return buf.getvalue()


def test_fixture_is_amr_nb(amr: bytes) -> None:
    assert amr.startswith(AMR_MAGIC)
    assert len(amr) < 50_000


def test_amr_to_wav_16k_mono(amr: bytes) -> None:
    audio = media.voice_for_transcription(amr)
    assert (audio.filename, audio.content_type) == ("voice.wav", "audio/wav")
    params, frames = _read_wav(audio)
    assert (params.nchannels, params.sampwidth, params.framerate) == (1, 2, 16_000)
    assert params.nframes / params.framerate == pytest.approx(FIXTURE_SECONDS, abs=0.05)
    pcm = array.array("h", frames)
    assert max(abs(s) for s in pcm) > 1000  # speech, not silence


def test_duration_seconds(amr: bytes) -> None:
    assert media.duration_seconds(amr) == pytest.approx(FIXTURE_SECONDS, abs=0.01)


@pytest.mark.parametrize("hint", ["amr", "AMR", "speex", "", "nonsense", "image2", "mp4", "amrnb"])
def test_format_hint_is_only_a_hint(amr: bytes, hint: str) -> None:
    params, _ = _read_wav(media.voice_for_transcription(amr, hint))
    assert params.nframes / params.framerate == pytest.approx(FIXTURE_SECONDS, abs=0.05)


def test_headerless_amr_frames_are_decoded(amr: bytes) -> None:
    params, _ = _read_wav(media.voice_for_transcription(amr[len(AMR_MAGIC) :], "amrnb"))
    assert params.nframes / params.framerate == pytest.approx(FIXTURE_SECONDS, abs=0.05)


def test_other_formats_are_downmixed_and_resampled() -> None:
    stereo = _wav_bytes(0.5, rate=44_100, channels=2)
    params, _ = _read_wav(media.voice_for_transcription(stereo, "amr"))  # wrong hint: FFmpeg probes instead
    assert (params.nchannels, params.framerate) == (1, 16_000)
    assert params.nframes == pytest.approx(8_000, abs=50)


@pytest.mark.parametrize(
    "data",
    [
        b"garbage" * 100,
        bytes(range(256)) * 40,
        AMR_MAGIC + b"\xff" * 500,
        AMR_MAGIC,
        b"\x00" * 10,
    ],
    ids=["text", "bytes", "amr-header-then-junk", "amr-header-only", "zeros"],
)
def test_garbage_raises(data: bytes) -> None:
    with pytest.raises(MediaError) as err:
        media.voice_for_transcription(data)
    assert 0 < len(str(err.value)) < 120


def test_truncated_amr_keeps_whole_frames(amr: bytes) -> None:
    params, _ = _read_wav(media.voice_for_transcription(amr[: len(amr) // 2]))
    assert 0.5 < params.nframes / params.framerate < FIXTURE_SECONDS


def test_image_is_not_audio() -> None:
    with pytest.raises(MediaError):
        media.voice_for_transcription((DATA / "tiny.png").read_bytes())


def test_empty_raises() -> None:
    with pytest.raises(MediaError, match="empty"):
        media.voice_for_transcription(b"")


def test_too_large_raises(amr: bytes) -> None:
    big = amr + b"\x00" * (media.MAX_VOICE_BYTES + 1 - len(amr))
    with pytest.raises(MediaError, match="too large"):
        media.voice_for_transcription(big)
    with pytest.raises(MediaError, match="too large"):
        media.duration_seconds(big)


def test_too_long_raises(amr: bytes) -> None:
    body = amr[len(AMR_MAGIC) :]
    repeats = math.ceil(media.MAX_VOICE_SECONDS / FIXTURE_SECONDS) + 1
    long_amr = AMR_MAGIC + body * repeats  # ~125 s of valid AMR-NB frames, ~200 KB
    assert len(long_amr) < media.MAX_VOICE_BYTES
    assert media.duration_seconds(long_amr) > media.MAX_VOICE_SECONDS
    with pytest.raises(MediaError, match="too long"):
        media.voice_for_transcription(long_amr)


def test_just_under_the_limit_is_accepted(amr: bytes) -> None:
    body = amr[len(AMR_MAGIC) :]
    repeats = int(media.MAX_VOICE_SECONDS // FIXTURE_SECONDS) - 1
    params, _ = _read_wav(media.voice_for_transcription(AMR_MAGIC + body * repeats))
    assert params.nframes / params.framerate == pytest.approx(repeats * FIXTURE_SECONDS, abs=0.1)


async def test_async_wrapper(amr: bytes) -> None:
    audio = await media.voice_for_transcription_async(amr)
    assert audio == media.voice_for_transcription(amr)
    with pytest.raises(MediaError):
        await media.voice_for_transcription_async(b"")


def test_media_error_message_is_safe() -> None:
    with pytest.raises(MediaError) as err:
        media.voice_for_transcription(b"SECRET-USER-DATA" * 10)
    assert "SECRET" not in str(err.value)
