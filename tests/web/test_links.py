"""LinkSigner: tokens round-trip, expire, and refuse every alteration; the key file is private and reused."""

from __future__ import annotations

import base64
import json
import stat
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.web.links import KEY_BYTES, KEY_FILE, InvalidLink, LinkSigner, history_url
from tests.daemon_runner import FakeClock

KEY = b"k" * 32


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def test_round_trip_names_the_user_and_is_url_safe() -> None:
    clock = FakeClock(1_700_000_000.0)
    signer = LinkSigner(KEY, clock)
    token = signer.token("张三.Zhang-San")
    assert signer.verify(token) == "张三.Zhang-San"
    assert signer.claims(token).expires == 1_700_000_000 + 24 * 3600
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert "=" not in token and token.count(".") == 1


def test_expiry_with_an_injected_clock() -> None:
    clock = FakeClock(1_000.0)
    signer = LinkSigner(KEY, clock)
    token = signer.token("alice", ttl=60)
    clock.advance(59)
    assert signer.verify(token) == "alice"
    clock.advance(1)
    with pytest.raises(InvalidLink, match="expired"):
        signer.verify(token)


def test_a_payload_for_another_user_with_the_old_mac_fails() -> None:
    signer = LinkSigner(KEY, FakeClock(1_000.0))
    payload, mac = signer.token("alice").split(".")
    body = json.loads(base64.urlsafe_b64decode(payload + "=="))
    forged = _b64(json.dumps({"u": "bob", "e": body["e"]}).encode())
    longer = _b64(json.dumps({"u": "alice", "e": body["e"] + 10**6}).encode())
    for changed in (forged, longer):
        with pytest.raises(InvalidLink, match="signature"):
            signer.verify(f"{changed}.{mac}")


def test_altered_mac_and_other_key_fail() -> None:
    signer = LinkSigner(KEY, FakeClock(1_000.0))
    token = signer.token("alice")
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    with pytest.raises(InvalidLink):
        signer.verify(flipped)
    with pytest.raises(InvalidLink):
        LinkSigner(b"x" * 32, FakeClock(1_000.0)).verify(token)


@pytest.mark.parametrize(
    "garbage",
    ["", ".", "abc", "a.b.c", "no-dot-at-all", "é.é", "x" * 5000, f"{_b64(b'{}')}.", f".{_b64(b'x' * 32)}"],
)
def test_garbage_fails(garbage: str) -> None:
    with pytest.raises(InvalidLink):
        LinkSigner(KEY).verify(garbage)


def test_a_well_signed_but_malformed_payload_fails() -> None:
    signer = LinkSigner(KEY, FakeClock(1_000.0))
    for body in (b"[]", b'{"u": "", "e": 9999999999}', b'{"u": "a", "e": "9999999999"}', b'{"u": "a", "e": true}'):
        payload = _b64(body)
        with pytest.raises(InvalidLink, match="malformed"):
            signer.verify(f"{payload}.{signer._mac(payload)}")


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        LinkSigner(b"short")
    with pytest.raises(ValueError, match="one user"):
        LinkSigner(KEY).token("")
    with pytest.raises(ValueError, match="positive"):
        LinkSigner(KEY).token("alice", ttl=0)


def test_key_file_is_created_private_and_reused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    first = LinkSigner.from_data_dir(data_dir)
    key_file = data_dir / KEY_FILE
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert len(key_file.read_bytes()) == KEY_BYTES
    assert [p.name for p in data_dir.iterdir()] == [KEY_FILE]  # no temporary file left behind
    token = first.token("alice")
    again = LinkSigner.from_data_dir(data_dir)  # a restart: same key, links still work
    assert again.verify(token) == "alice"
    assert key_file.read_bytes() == again._key


def test_a_damaged_key_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / KEY_FILE).write_bytes(b"short")
    with pytest.raises(ValueError, match="damaged"):
        LinkSigner.from_data_dir(tmp_path)


def test_two_data_dirs_have_different_keys(tmp_path: Path) -> None:
    token = LinkSigner.from_data_dir(tmp_path / "a").token("alice")
    with pytest.raises(InvalidLink):
        LinkSigner.from_data_dir(tmp_path / "b").verify(token)


def test_history_url() -> None:
    assert history_url("https://bot.example.com/", "t.k") == "https://bot.example.com/history/t.k"
    assert history_url("https://example.com/bot", "t.k") == "https://example.com/bot/history/t.k"
