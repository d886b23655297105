"""chatgpt_wecom.daemon.media.images: the one image sniffer (also what the model client labels images with)."""

from __future__ import annotations

from pathlib import Path

import pytest

from chatgpt_wecom.daemon.media.images import image_kind

DATA = Path(__file__).resolve().parent.parent.parent / "data"


@pytest.mark.parametrize(
    ("name", "kind"),
    [("tiny.jpg", "image/jpeg"), ("tiny.png", "image/png"), ("voice_hello.amr", None)],
)
def test_image_kind_fixtures(name: str, kind: str | None) -> None:
    assert image_kind((DATA / name).read_bytes()) == kind


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"GIF89a\x01\x00\x01\x00", "image/gif"),
        (b"GIF87a\x01\x00\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", None),
        (b"RIFF", None),
        (b"", None),
        (b"\xff\xd8", None),
        (b"garbage", None),
        (b'{"errcode":40007,"errmsg":"invalid media_id"}', None),
    ],
)
def test_image_kind_magic(data: bytes, kind: str | None) -> None:
    assert image_kind(data) == kind
