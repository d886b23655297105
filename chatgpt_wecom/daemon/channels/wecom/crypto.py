"""WeCom callback crypto (the ``WXBizMsgCrypt`` scheme), as pure functions.

Protocol facts (see ``wecom-protocol.md`` §1):

* ``EncodingAESKey`` is 43 chars of ``[A-Za-z0-9]``; the AES key is ``b64decode(key + "=")`` (32 bytes).
* AES-256-CBC with ``IV = key[:16]``; PKCS#7 padding to a multiple of **32** bytes (pad value 1..32).
* plaintext = ``random(16) ‖ msg_len (4 bytes, big-endian) ‖ msg (UTF-8) ‖ receiveid``.
* ``msg_signature = sha1("".join(sorted([token, timestamp, nonce, encrypt]))).hexdigest()``.

Every decryption failure raises a :class:`CryptoError` subclass whose message is safe to log: it never
contains keys, tokens, ciphertext or plaintext.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Final

from Crypto.Cipher import AES

__all__ = [
    "CryptoError",
    "DecryptError",
    "ReceiveIdError",
    "SignatureError",
    "WeComCrypto",
    "aes_key_from_encoding_key",
    "signature",
    "verify_signature",
]

_PAD_BLOCK: Final = 32  # WeCom pads to 32 bytes, not to the AES block size
_RANDOM_LEN: Final = 16
_LEN_FIELD: Final = 4
_HEADER_LEN: Final = _RANDOM_LEN + _LEN_FIELD
_ENCODING_KEY_RE: Final = re.compile(r"[A-Za-z0-9]{43}")


class CryptoError(Exception):
    """Base class of all crypto failures; ``str(e)`` is safe to log."""


class SignatureError(CryptoError):
    """``msg_signature`` does not match the request (wrong token or forged request)."""


class DecryptError(CryptoError):
    """The ciphertext is malformed: bad base64, length, padding or ``msg_len``."""


class ReceiveIdError(CryptoError):
    """The plaintext was encrypted for another receiver (e.g. another corp's CorpID)."""


def aes_key_from_encoding_key(encoding_aes_key: str) -> bytes:
    """Derive the 32-byte AES key from a 43-character ``EncodingAESKey``.

    Raises ``ValueError`` (without echoing the key) if the key is not 43 characters of ``[A-Za-z0-9]``.
    """
    if not _ENCODING_KEY_RE.fullmatch(encoding_aes_key):
        raise ValueError(
            f"EncodingAESKey must be exactly 43 characters of [A-Za-z0-9] (got {len(encoding_aes_key)} characters)"
        )
    key = base64.b64decode(encoding_aes_key + "=", validate=True)
    assert len(key) == 32  # 43 base64 chars + "=" always decode to 32 bytes
    return key


def signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """Return the WeCom ``msg_signature``: SHA-1 hex of the four values sorted and concatenated."""
    joined = "".join(sorted([token, timestamp, nonce, encrypt]))
    # SHA-1 is mandated by the protocol. surrogatepass: never fail on odd query-string input.
    return hashlib.sha1(joined.encode("utf-8", "surrogatepass")).hexdigest()  # noqa: S324


def verify_signature(token: str, timestamp: str, nonce: str, encrypt: str, msg_signature: str) -> None:
    """Check ``msg_signature`` in constant time; raise :class:`SignatureError` on mismatch."""
    expected = signature(token, timestamp, nonce, encrypt).encode("ascii")
    # compare_digest refuses non-ASCII str, so compare bytes; any non-hex input simply mismatches.
    given = msg_signature.encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(expected, given):
        raise SignatureError("msg_signature mismatch")


def _pkcs7_pad(data: bytes) -> bytes:
    pad = _PAD_BLOCK - len(data) % _PAD_BLOCK  # 1..32; a full block when already aligned
    return data + bytes([pad]) * pad


def _pkcs7_unpad(data: bytes) -> bytes:
    if not data or len(data) % _PAD_BLOCK:
        raise DecryptError(f"decrypted length {len(data)} is not a positive multiple of {_PAD_BLOCK}")
    pad = data[-1]
    if not 1 <= pad <= _PAD_BLOCK or data[-pad:] != bytes([pad]) * pad:
        raise DecryptError("invalid PKCS#7 padding")
    return data[:-pad]


class WeComCrypto:
    """Encrypt, decrypt and sign WeCom callback payloads for one (token, EncodingAESKey, receiveid).

    ``receive_id`` is the CorpID for a self-built app's callbacks.
    """

    __slots__ = ("_blocks", "_key", "_receive_id", "_token")

    def __init__(self, token: str, encoding_aes_key: str, receive_id: str) -> None:
        self._token = token
        self._key = aes_key_from_encoding_key(encoding_aes_key)
        self._receive_id = receive_id.encode("utf-8")
        # CBC decryption is each block's AES decryption XOR the ciphertext block before it (the IV for the first):
        # one ECB cipher, keyed once, does every message. AES.new per message was half of a callback's crypto.
        self._blocks = AES.new(self._key, AES.MODE_ECB)

    def __repr__(self) -> str:
        return f"WeComCrypto(receive_id={self._receive_id.decode('utf-8')!r})"

    def sign(self, timestamp: str, nonce: str, encrypt: str) -> str:
        """Return the ``msg_signature`` for ``encrypt`` under this instance's token."""
        return signature(self._token, timestamp, nonce, encrypt)

    def verify_url(self, msg_signature: str, timestamp: str, nonce: str, echostr: str) -> str:
        """Handle the GET URL check: verify the signature over the (URL-decoded) ``echostr``,
        decrypt it and return the echo text to send back verbatim."""
        verify_signature(self._token, timestamp, nonce, echostr, msg_signature)
        return self.decrypt(echostr)

    def decrypt_message(self, msg_signature: str, timestamp: str, nonce: str, encrypt: str) -> str:
        """Verify the signature over ``encrypt`` (the envelope's ``<Encrypt>``), decrypt it, check the
        receiveid and return the inner XML text."""
        verify_signature(self._token, timestamp, nonce, encrypt, msg_signature)
        return self.decrypt(encrypt)

    def decrypt(self, encrypt: str) -> str:
        """Decrypt a base64 ciphertext and check its receiveid; **no signature check**.

        Only use it on input whose signature was verified already: the distinct errors would otherwise
        act as a padding oracle.
        """
        try:
            raw = base64.b64decode(encrypt, validate=True)
        except ValueError:  # binascii.Error, or non-ASCII str
            raise DecryptError("ciphertext is not valid base64") from None
        if not raw or len(raw) % AES.block_size:
            raise DecryptError(f"ciphertext length {len(raw)} is not a positive multiple of 16")

        chain = self._key[:16] + raw[:-16]  # the IV, then every ciphertext block but the last
        decrypted = int.from_bytes(self._blocks.decrypt(raw), "big") ^ int.from_bytes(chain, "big")
        content = _pkcs7_unpad(decrypted.to_bytes(len(raw), "big"))

        if len(content) < _HEADER_LEN:
            raise DecryptError("plaintext shorter than its 20-byte header")
        msg_len = int.from_bytes(content[_RANDOM_LEN:_HEADER_LEN], "big")
        msg_end = _HEADER_LEN + msg_len
        if msg_end > len(content):
            raise DecryptError("msg_len runs past the end of the plaintext")
        if content[msg_end:] != self._receive_id:
            raise ReceiveIdError("receiveid in the message does not match the configured one")
        try:
            return content[_HEADER_LEN:msg_end].decode("utf-8")
        except UnicodeDecodeError:
            raise DecryptError("message is not valid UTF-8") from None

    def encrypt(self, plaintext: str, random16: bytes | None = None) -> str:
        """Encrypt ``plaintext`` for this receiveid and return it as standard base64.

        ``random16`` is the 16-byte random prefix (default ``os.urandom(16)``); pass it only for
        known-answer tests. Raises ``ValueError`` if it is not 16 bytes long.
        """
        if random16 is None:
            random16 = os.urandom(_RANDOM_LEN)
        elif len(random16) != _RANDOM_LEN:
            raise ValueError(f"random16 must be {_RANDOM_LEN} bytes, got {len(random16)}")
        msg = plaintext.encode("utf-8")
        data = random16 + len(msg).to_bytes(_LEN_FIELD, "big") + msg + self._receive_id
        cipher = AES.new(self._key, AES.MODE_CBC, iv=self._key[:16])
        return base64.b64encode(cipher.encrypt(_pkcs7_pad(data))).decode("ascii")
