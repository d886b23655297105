"""Tests for chatgpt_wecom.daemon.channels.wecom.crypto against Tencent's official known-answer vectors."""

from __future__ import annotations

import base64
from collections.abc import Callable

import pytest
from Crypto.Cipher import AES
from hypothesis import given
from hypothesis import strategies as st

from chatgpt_wecom.daemon.channels.wecom.crypto import (
    CryptoError,
    DecryptError,
    ReceiveIdError,
    SignatureError,
    WeComCrypto,
    aes_key_from_encoding_key,
    signature,
    verify_signature,
)
from tests.wecom_vectors import A2_PLAINTEXT, B2_PLAINTEXT

# --- Known-answer vectors, verbatim from wecom-protocol.md §3 ---

A_TOKEN = "QDG6eK"
A_KEY = "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
A_RECEIVEID = "wx5823bf96d3bd56c7"
B_TOKEN = "hJqcu3uJ9Tn2gXPmxx2w9kkCkCE2EPYo"
B_KEY = "6qkdMrq68nTKduznJYO1A37W2oEgpkMUvkttRToqhUt"
B_RECEIVEID = "ww1436e0e65a779aee"

URL_VECTORS: dict[str, dict[str, str]] = {
    "A1": {
        "token": A_TOKEN,
        "encoding_aes_key": A_KEY,
        "receiveid": A_RECEIVEID,
        "timestamp": "1409659589",
        "nonce": "263014780",
        "msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3",
        "echostr_decoded": ("P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="),
        "expected_response_body": "1616140317555161061",
        "random16_hex": "63343162363434393163323436386430",
    },
    "B1": {
        "token": B_TOKEN,
        "encoding_aes_key": B_KEY,
        "receiveid": B_RECEIVEID,
        "timestamp": "1476416373",
        "nonce": "47744683",
        "msg_signature": "012bc692d0a58dd4b10f8dfe5c4ac00ae211ebeb",
        "echostr_decoded": ("fsi1xnbH4yQh0+PJxcOdhhK6TDXkjMyhEPA7xB2TGz6b+g7xyAbEkRxN/3cNXW9qdqjnoVzEtpbhnFyq6SVHyA=="),
        "expected_response_body": "1288432023552776189",
        "random16_hex": "38393038643066663035326166646130",
    },
}

A2_ENCRYPT = (
    "RypEvHKD8QQKFhvQ6QleEB4J58tiPdvo+rtK1I9qca6aM/wvqnLSV5zEPeusUiX5L5X/0lWfrf0QADHHhGd3QczcdCUpj911L3vg3W"
    "/sYYvuJTs3TUUkSUXxaccAS0qhxchrRYt66wiSpGLYL42aM6A8dTT+6k4aSknmPj48kzJs8qLjvd4Xgpue06DOdnLxAUHzM6+kDZ+H"
    "MZfJYuR+LtwGc2hgf5gsijff0ekUNXZiqATP7PF5mZxZ3Izoun1s4zG4LUMnvw2r+KqCKIw+3IQH03v+BCA9nMELNqbSf6tiWSrXJB"
    "3LAVGUcallcrw8V2t9EL4EhzJWrQUax5wLVMNS0+rUPA3k22Ncx4XXZS9o0MBH27Bo6BpNelZpS+/uh9KsNlY6bHCmJU9p8g7m3fVK"
    "n28H3KDYA5Pl/T8Z1ptDAVe0lXdQ2YoyyH2uyPIGHBZZIs2pDBS8R07+qN+E7Q=="
)
B2_ENCRYPT = (
    "Kl7kjoSf6DMD1zh7rtrHjFaDapSCkaOnwu3bqLc5tAybhhMl9pFeK8NslNPVdMwmBQTNoW4mY7AIjeLvEl3NyeTkAgGzBhzTtRLNsh"
    "w2AEew+kkYcD+Fq72Kt00fT0WnN87hGrW8SqGc+NcT3mu87Ha3dz1pSDi6GaUA6A0sqfde0VJPQbZ9U+3JWcoD4Z5jaU0y9GSh010w"
    "sHF8KZD24YhmZH4ch4Ka7ilEbjbfvhKkNL65HHL0J6EYJIZUC2pFrdkJ7MhmEbU2qARR4iQHE7wy24qy0cRX3Mfp6iELcDNfSsPGjU"
    "QVDGxQDCWjayJOpcwocugux082f49HKYg84EpHSGXAyh+/oxwaWbvL6aSDPOYuPDGOCI8jmnKiypE+"
)

POST_VECTORS: dict[str, dict[str, str]] = {
    "A2": {
        "token": A_TOKEN,
        "encoding_aes_key": A_KEY,
        "receiveid": A_RECEIVEID,
        "timestamp": "1409659813",
        "nonce": "1372623149",
        "msg_signature": "477715d11cdb4164915debcba66cb864d751f3e6",
        "encrypt": A2_ENCRYPT,
        "expected_plaintext": A2_PLAINTEXT,
        "random16_hex": "30393630363838393332633437656631",
    },
    "B2": {
        "token": B_TOKEN,
        "encoding_aes_key": B_KEY,
        "receiveid": B_RECEIVEID,
        "timestamp": "1476422779",
        "nonce": "1597212914",
        "msg_signature": "0c3914025cb4b4d68103f6bfc8db550f79dcf48e",
        "encrypt": B2_ENCRYPT,
        "expected_plaintext": B2_PLAINTEXT,
        "random16_hex": "36393463653561383361653037666533",
    },
}

SECRETS = (A_TOKEN, A_KEY, B_TOKEN, B_KEY, "hello", "你好")


def _crypto(v: dict[str, str]) -> WeComCrypto:
    return WeComCrypto(v["token"], v["encoding_aes_key"], v["receiveid"])


def _raw_encrypt(encoding_aes_key: str, data: bytes) -> str:
    """AES-CBC-encrypt ``data`` (no padding added) the WeCom way, to craft malformed plaintexts."""
    key = aes_key_from_encoding_key(encoding_aes_key)
    return base64.b64encode(AES.new(key, AES.MODE_CBC, iv=key[:16]).encrypt(data)).decode()


def _plaintext(msg: bytes, receiveid: bytes, *, msg_len: int | None = None) -> bytes:
    n = len(msg) if msg_len is None else msg_len
    return b"R" * 16 + n.to_bytes(4, "big") + msg + receiveid


def _pad32(data: bytes) -> bytes:
    pad = 32 - len(data) % 32
    return data + bytes([pad]) * pad


# --- Known answers ---


def test_aes_key_is_32_bytes_from_base64() -> None:
    key = aes_key_from_encoding_key(A_KEY)
    assert len(key) == 32
    assert key == base64.b64decode(A_KEY + "=")


def test_signature_only_example() -> None:
    assert signature("QDG6eK", "1409659813", "1372623149", A2_ENCRYPT) == ("477715d11cdb4164915debcba66cb864d751f3e6")
    # The values are sorted, so argument order does not matter.
    assert signature("1372623149", A2_ENCRYPT, "QDG6eK", "1409659813") == ("477715d11cdb4164915debcba66cb864d751f3e6")


@pytest.mark.parametrize("vid", sorted(URL_VECTORS))
def test_verify_url_vectors(vid: str) -> None:
    v = URL_VECTORS[vid]
    crypto = _crypto(v)
    echo = crypto.verify_url(v["msg_signature"], v["timestamp"], v["nonce"], v["echostr_decoded"])
    assert echo == v["expected_response_body"]
    assert crypto.sign(v["timestamp"], v["nonce"], v["echostr_decoded"]) == v["msg_signature"]
    assert crypto.encrypt(echo, bytes.fromhex(v["random16_hex"])) == v["echostr_decoded"]


@pytest.mark.parametrize("vid", sorted(POST_VECTORS))
def test_decrypt_message_vectors(vid: str) -> None:
    v = POST_VECTORS[vid]
    crypto = _crypto(v)
    xml = crypto.decrypt_message(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypt"])
    assert xml == v["expected_plaintext"]
    assert crypto.decrypt(v["encrypt"]) == v["expected_plaintext"]


@pytest.mark.parametrize("vid", sorted(POST_VECTORS))
def test_reencrypt_vectors_byte_for_byte(vid: str) -> None:
    v = POST_VECTORS[vid]
    crypto = _crypto(v)
    assert crypto.encrypt(v["expected_plaintext"], bytes.fromhex(v["random16_hex"])) == v["encrypt"]
    assert crypto.sign(v["timestamp"], v["nonce"], v["encrypt"]) == v["msg_signature"]


def test_a2_uses_32_byte_padding() -> None:
    """A2 carries pad value 30, impossible with 16-byte PKCS#7."""
    key = aes_key_from_encoding_key(A_KEY)
    raw = AES.new(key, AES.MODE_CBC, iv=key[:16]).decrypt(base64.b64decode(A2_ENCRYPT))
    assert raw[-1] == 30


# --- Signature failures ---


def test_wrong_signature_raises() -> None:
    v = POST_VECTORS["A2"]
    with pytest.raises(SignatureError):
        _crypto(v).decrypt_message("0" * 40, v["timestamp"], v["nonce"], v["encrypt"])


def test_wrong_token_raises() -> None:
    v = POST_VECTORS["A2"]
    crypto = WeComCrypto("wrongToken", A_KEY, A_RECEIVEID)
    with pytest.raises(SignatureError):
        crypto.decrypt_message(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypt"])


def test_signature_covers_timestamp_and_echostr() -> None:
    v = URL_VECTORS["A1"]
    crypto = _crypto(v)
    with pytest.raises(SignatureError):
        crypto.verify_url(v["msg_signature"], "1409659590", v["nonce"], v["echostr_decoded"])
    with pytest.raises(SignatureError):
        crypto.verify_url(v["msg_signature"], v["timestamp"], v["nonce"], URL_VECTORS["B1"]["echostr_decoded"])


@pytest.mark.parametrize("given_sig", ["", "é" * 40, "477715D11CDB4164915DEBCBA66CB864D751F3E6", "\ud800"])
def test_verify_signature_rejects_odd_input_without_type_error(given_sig: str) -> None:
    with pytest.raises(SignatureError):
        verify_signature("QDG6eK", "1409659813", "1372623149", A2_ENCRYPT, given_sig)


def test_verify_signature_accepts_match() -> None:
    verify_signature("QDG6eK", "1409659813", "1372623149", A2_ENCRYPT, "477715d11cdb4164915debcba66cb864d751f3e6")


# --- Decryption failures ---


def _tampered_padding() -> str:
    """Flip the last byte of the second-to-last block: in CBC that flips the last plaintext byte (pad 30)."""
    raw = bytearray(base64.b64decode(A2_ENCRYPT))
    raw[-17] ^= 0xFF
    return base64.b64encode(bytes(raw)).decode()


MALFORMED: dict[str, Callable[[], str]] = {
    "tampered_padding": _tampered_padding,
    "truncated_base64": lambda: A2_ENCRYPT[:-1],
    "truncated_by_one_byte": lambda: A2_ENCRYPT[:-4],
    "non_base64": lambda: "this is not base64!",
    "non_ascii": lambda: "密文密文",
    "whitespace_inside": lambda: A2_ENCRYPT[:8] + " " + A2_ENCRYPT[8:],
    "empty": lambda: "",
    "not_multiple_of_16": lambda: base64.b64encode(b"x" * 20).decode(),
    "one_aes_block_only": lambda: base64.b64encode(base64.b64decode(A2_ENCRYPT)[:16]).decode(),
    "msg_len_too_large": lambda: _raw_encrypt(A_KEY, _pad32(_plaintext(b"hi", b"", msg_len=10**6))),
    "msg_len_one_too_large": lambda: _raw_encrypt(
        A_KEY, _pad32(_plaintext(b"hi", A_RECEIVEID.encode(), msg_len=3 + len(A_RECEIVEID)))
    ),
    "shorter_than_header": lambda: _raw_encrypt(A_KEY, _pad32(b"R" * 10)),
    "pad_value_0": lambda: _raw_encrypt(A_KEY, _plaintext(b"hi", A_RECEIVEID.encode()).ljust(64, b"\x00")),
    "pad_value_33": lambda: _raw_encrypt(A_KEY, _plaintext(b"hi", A_RECEIVEID.encode()).ljust(64, b"\x21")),
    "pad_bytes_inconsistent": lambda: _raw_encrypt(
        A_KEY, _plaintext(b"hi", A_RECEIVEID.encode()).ljust(61, b"\x01") + b"\x01\x03\x03"
    ),
    "msg_not_utf8": lambda: _raw_encrypt(A_KEY, _pad32(_plaintext(b"\xff\xfe", A_RECEIVEID.encode()))),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_ciphertext_raises_decrypt_error(case: str) -> None:
    crypto = WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID)
    encrypt = MALFORMED[case]()
    with pytest.raises(DecryptError) as info:
        crypto.decrypt(encrypt)
    assert not any(s in str(info.value) for s in SECRETS)
    # With a valid signature over the bad ciphertext, decrypt_message fails the same way.
    with pytest.raises(DecryptError):
        crypto.decrypt_message(crypto.sign("1", "2", encrypt), "1", "2", encrypt)


def test_receiveid_of_another_corp_is_rejected() -> None:
    corp_a = WeComCrypto(A_TOKEN, A_KEY, "wwCorpAAAAAAAAAAAA")
    corp_b = WeComCrypto(A_TOKEN, A_KEY, "wwCorpBBBBBBBBBBBB")
    encrypt = corp_a.encrypt("<xml/>")
    assert corp_a.decrypt(encrypt) == "<xml/>"
    with pytest.raises(ReceiveIdError):
        corp_b.decrypt(encrypt)
    with pytest.raises(ReceiveIdError):
        corp_b.decrypt_message(corp_b.sign("1", "2", encrypt), "1", "2", encrypt)


def test_official_vector_with_wrong_receiveid() -> None:
    v = POST_VECTORS["A2"]
    crypto = WeComCrypto(A_TOKEN, A_KEY, B_RECEIVEID)
    with pytest.raises(ReceiveIdError):
        crypto.decrypt_message(v["msg_signature"], v["timestamp"], v["nonce"], v["encrypt"])


def test_empty_receiveid_is_supported_and_distinct() -> None:
    robot = WeComCrypto(A_TOKEN, A_KEY, "")
    assert robot.decrypt(robot.encrypt("hi")) == "hi"
    with pytest.raises(ReceiveIdError):
        WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID).decrypt(robot.encrypt("hi"))


def test_all_errors_are_crypto_errors() -> None:
    for exc in (SignatureError, DecryptError, ReceiveIdError):
        assert issubclass(exc, CryptoError)
        assert not issubclass(exc, ValueError)


# --- Key validation and argument errors ---


@pytest.mark.parametrize(
    "key",
    [A_KEY[:42], A_KEY + "A", "", A_KEY[:42] + "+", A_KEY[:42] + "=", A_KEY[:42] + "é", " " + A_KEY[:42]],
)
def test_bad_encoding_aes_key(key: str) -> None:
    with pytest.raises(ValueError, match="43 characters") as info:
        aes_key_from_encoding_key(key)
    if len(key) > 4:
        assert key not in str(info.value)
    with pytest.raises(ValueError, match="43 characters"):
        WeComCrypto(A_TOKEN, key, A_RECEIVEID)


def test_random16_must_be_16_bytes() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID).encrypt("x", b"short")


def test_repr_does_not_leak_secrets() -> None:
    text = repr(WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID))
    assert A_RECEIVEID in text
    assert A_TOKEN not in text
    assert A_KEY not in text


# --- Encryption properties ---


def test_full_pad_block_when_aligned() -> None:
    crypto = WeComCrypto(A_TOKEN, A_KEY, "")
    msg = "x" * 12  # 16 + 4 + 12 = 32 bytes -> a whole block of 32 x 0x20 is appended
    raw = base64.b64decode(crypto.encrypt(msg))
    assert len(raw) == 64
    assert crypto.decrypt(crypto.encrypt(msg)) == msg


def test_binary_random_prefix_is_fine() -> None:
    crypto = WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID)
    assert crypto.decrypt(crypto.encrypt("你好", bytes(range(240, 256)))) == "你好"


def test_default_random_prefix_differs() -> None:
    crypto = WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID)
    assert crypto.encrypt("same") != crypto.encrypt("same")


@given(
    text=st.text(),
    random16=st.binary(min_size=16, max_size=16),
    receive_id=st.text(max_size=40),
)
def test_roundtrip_property(text: str, random16: bytes, receive_id: str) -> None:
    crypto = WeComCrypto(A_TOKEN, A_KEY, receive_id)
    encrypt = crypto.encrypt(text, random16)
    assert len(base64.b64decode(encrypt)) % 32 == 0
    assert crypto.decrypt(encrypt) == text
    assert crypto.decrypt_message(crypto.sign("t", "n", encrypt), "t", "n", encrypt) == text


@given(garbage=st.one_of(st.text(), st.binary().map(lambda b: base64.b64encode(b).decode())))
def test_garbage_only_raises_crypto_errors(garbage: str) -> None:
    crypto = WeComCrypto(A_TOKEN, A_KEY, A_RECEIVEID)
    try:
        crypto.decrypt(garbage)
    except CryptoError:
        pass
    except Exception as exc:  # pragma: no cover - the assertion message is the point
        raise AssertionError(f"leaked {type(exc).__name__}") from exc
