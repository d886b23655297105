"""The AI bot's wire format, without I/O: frames to send, frames received, errcodes, text and media helpers.

Every frame is JSON `{cmd, headers: {req_id}, body}`; an acknowledgement is `{headers: {req_id}, errcode, errmsg
[, body]}` without a cmd (wecom-aibot-protocol.md §1.2). Test vectors: §9.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import secrets
import time
from dataclasses import dataclass
from typing import Any, Final

from Crypto.Cipher import AES

SUBSCRIBE: Final = "aibot_subscribe"
PING: Final = "ping"
MSG_CALLBACK: Final = "aibot_msg_callback"
EVENT_CALLBACK: Final = "aibot_event_callback"
RESPOND: Final = "aibot_respond_msg"
RESPOND_WELCOME: Final = "aibot_respond_welcome_msg"
SEND: Final = "aibot_send_msg"
UPLOAD_INIT: Final = "aibot_upload_media_init"
UPLOAD_CHUNK: Final = "aibot_upload_media_chunk"
UPLOAD_FINISH: Final = "aibot_upload_media_finish"

CONTENT_LIMIT: Final = 20480  # UTF-8 bytes of one stream frame or markdown message
CHUNK_SIZE: Final = 512 * 1024  # bytes of one upload chunk, before base64
MAX_CHUNKS: Final = 100

# errcodes (§1.8)
INVALID_REQ_ID: Final = 846605
STREAM_EXPIRED: Final = 846608
NOT_SUBSCRIBED: Final = 846609
COMMAND_CONFLICT: Final = 6000
INVALID_CHATID: Final = 93006
RETRYABLE: Final = frozenset({NOT_SUBSCRIBED, COMMAND_CONFLICT, -1})
RATE_LIMITED: Final = frozenset({45009, 45033, 45047})  # frequency limits (the app's codes; the bot's are undocumented)
STREAM_GONE: Final = frozenset({INVALID_REQ_ID, STREAM_EXPIRED})

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f]")  # stripped before parsing, as the Node SDK does


def new_req_id(cmd: str, now: float | None = None) -> str:
    """`{cmd}_{epoch_ms}_{8 hex}`, as both SDKs make them."""
    ms = int((time.time() if now is None else now) * 1000)
    return f"{cmd}_{ms}_{secrets.token_hex(4)}"


def frame(cmd: str, req_id: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"cmd": cmd, "headers": {"req_id": req_id}}
    if body is not None:
        out["body"] = body
    return out


def subscribe(bot_id: str, secret: str) -> dict[str, Any]:
    return frame(SUBSCRIBE, new_req_id(SUBSCRIBE), {"bot_id": bot_id, "secret": secret})


def ping() -> dict[str, Any]:
    return frame(PING, new_req_id(PING))  # no body: a ping with `"body": {}` reportedly gets dropped (§1.2)


def stream(
    req_id: str, stream_id: str, content: str, *, finish: bool, feedback_id: str | None = None
) -> dict[str, Any]:
    """One cumulative frame of a streamed reply (it replaces what the message showed)."""
    inner: dict[str, Any] = {"id": stream_id, "finish": finish, "content": cap(content)}
    if feedback_id:
        inner["feedback"] = {"id": cap(feedback_id, 256)}
    return frame(RESPOND, req_id, {"msgtype": "stream", "stream": inner})


def welcome(req_id: str, text: str) -> dict[str, Any]:
    return frame(RESPOND_WELCOME, req_id, {"msgtype": "text", "text": {"content": text}})


def send_markdown(chatid: str, content: str) -> dict[str, Any]:
    return frame(
        SEND, new_req_id(SEND), {"chatid": chatid, "msgtype": "markdown", "markdown": {"content": cap(content)}}
    )


def send_image(chatid: str, media_id: str) -> dict[str, Any]:
    return frame(SEND, new_req_id(SEND), {"chatid": chatid, "msgtype": "image", "image": {"media_id": media_id}})


def upload_frames(kind: str, filename: str, data: bytes) -> tuple[dict[str, Any], list[str]]:
    """The init frame's body, and the base64 of each chunk (0-based, ≤ 512 KiB each); ValueError past 100."""
    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]
    if len(chunks) > MAX_CHUNKS:
        raise ValueError(f"{len(data)} bytes need {len(chunks)} chunks; at most {MAX_CHUNKS} are taken")
    init = {"type": kind, "filename": filename, "total_size": len(data), "total_chunks": len(chunks),
            "md5": hashlib.md5(data, usedforsecurity=False).hexdigest()}  # fmt: skip
    return init, [base64.b64encode(c).decode() for c in chunks]


# --- received ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Received:
    """A frame from the server: a callback (`cmd` set) or an acknowledgement (`cmd` empty)."""

    cmd: str
    req_id: str
    body: dict[str, Any]
    errcode: int
    errmsg: str


def parse(text: str) -> Received:
    """A frame as text; ValueError when it is not one."""
    data = json.loads(_CONTROL.sub("", text))
    if not isinstance(data, dict):
        raise ValueError("a frame is a JSON object")
    headers = data.get("headers") or {}
    body = data.get("body") or {}
    return Received(cmd=str(data.get("cmd") or ""), req_id=str(headers.get("req_id") or ""),
                    body=body if isinstance(body, dict) else {}, errcode=int(data.get("errcode") or 0),
                    errmsg=str(data.get("errmsg") or ""))  # fmt: skip


# --- text -------------------------------------------------------------------------------------------
def cap(text: str, limit: int = CONTENT_LIMIT) -> str:
    """The longest prefix of `text` within `limit` UTF-8 bytes (never cut inside a character)."""
    data = text.encode()
    if len(data) <= limit:
        return text
    return data[:limit].decode(errors="ignore")


def split_utf8(text: str, limit: int = CONTENT_LIMIT) -> list[str]:
    """`text` in pieces of at most `limit` UTF-8 bytes, cut between characters (§9.5)."""
    pieces, rest = [], text
    while rest:
        head = cap(rest, limit)
        pieces.append(head)
        rest = rest[len(head) :]
    return pieces


_SPACE = "[\\s\u2005\u00a0\u3000]"


def strip_mention(text: str, bot_name: str = "") -> str:
    """A group message without the leading `@bot_name` (any leading @name when no name is set) and the space after
    it (U+2005 included)."""
    lead = re.escape("@" + bot_name) if bot_name else r"@[^\s\u2005\u00a0\u3000]+"
    return re.sub(rf"^{_SPACE}*{lead}(?:{_SPACE}+|$)", "", text, count=1).strip(" \t\r\n\u2005\u00a0\u3000")


def quote_text(body: dict[str, Any]) -> str:
    """The text of the message the user quoted, if it had any."""
    quote = body.get("quote") or {}
    if quote.get("msgtype") == "text":
        return str((quote.get("text") or {}).get("content") or "")
    if quote.get("msgtype") == "voice":
        return str((quote.get("voice") or {}).get("content") or "")
    if quote.get("msgtype") == "mixed":
        return mixed_parts(quote.get("mixed") or {})[0]
    return ""


def mixed_parts(mixed: dict[str, Any]) -> tuple[str, dict[str, str] | None]:
    """A mixed message's text (its text items joined) and its first image `{url, aeskey}`."""
    texts, image = [], None
    for item in mixed.get("msg_item") or []:
        if item.get("msgtype") == "text":
            texts.append(str((item.get("text") or {}).get("content") or ""))
        elif item.get("msgtype") == "image" and image is None:
            found = item.get("image") or {}
            image = {"url": str(found.get("url") or ""), "aeskey": str(found.get("aeskey") or "")}
    return "\n".join(t for t in texts if t), image


# --- media ------------------------------------------------------------------------------------------
def decrypt_media(data: bytes, aeskey: str) -> bytes:
    """A downloaded file decrypted with its message's aeskey: AES-256-CBC, iv = key[:16], PKCS#7 with pads 1..32
    (§3.8). ValueError when it does not decrypt."""
    key = base64.b64decode(aeskey + "=" * (-len(aeskey) % 4))
    if len(key) != 32:
        raise ValueError("the aeskey is not 32 bytes")
    if not data or len(data) % 16:
        raise ValueError("the encrypted data is not a whole number of AES blocks")
    plain = AES.new(key, AES.MODE_CBC, key[:16]).decrypt(data)
    pad = plain[-1]
    if not 1 <= pad <= 32 or pad > len(plain) or plain[-pad:] != bytes([pad]) * pad:
        raise ValueError("bad padding: wrong aeskey or damaged data")
    return plain[:-pad]
