"""A DingTalk bot message (dingtalk-protocol.md §2 — the same JSON in a Stream frame and an HTTP POST) as the
`Inbound`s the pipeline takes, with what replying needs kept in the payload.

- Who: `senderStaffId` (the org's userId, what OpenAPI sends to). DingTalk leaves it empty for some senders
  (external contacts): they get `anon-<hash of senderId>`, stable per sender, and can be answered only through
  the message's sessionWebhook (no staffId to address by OpenAPI, none to @).
- Where: a group is its `conversationId` (the openConversationId OpenAPI sends to); a private chat is "".
- What: text (trimmed: a group's @mention leaves a leading space); richText = its text, and its first picture as
  an image message stored just before it (key `<msgId>#picture`, marked `QUESTION_FOLLOWS` when there is text),
  so the picture is kept without a reply of its own and the text is asked about it; picture → "image"; audio →
  "voice" with DingTalk's own speech recognition; video, file and anything else keep their type (the pipeline
  answers that it cannot read them).
- Media references (`payload["media_id"]`) are `<client_id> <downloadCode>`: the app whose robot received it is
  the one that may download it (`channel.fetch_media`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from chatgpt_wecom.daemon.channels.base import QUESTION_FOLLOWS, Inbound

PRIVATE, GROUP = "1", "2"  # conversationType


class MessageError(ValueError):
    """Not a bot message this channel can take; `str(e)` is safe to log (it quotes no content)."""


def media_ref(client_id: str, download_code: str) -> str:
    return f"{client_id} {download_code}"


def parse_media_ref(ref: str) -> tuple[str, str]:
    client_id, sep, code = ref.partition(" ")
    if not (sep and client_id and code):
        raise MessageError("not a DingTalk media reference")
    return client_id, code


def user_of(data: Mapping[str, Any]) -> str:
    """The person who sent it: the staffId, or a stable stand-in when DingTalk gives none."""
    staff = str(data.get("senderStaffId") or "").strip()
    if staff:
        return staff
    sender = str(data.get("senderId") or "").strip()
    if not sender:
        raise MessageError("message has neither senderStaffId nor senderId")
    return "anon-" + hashlib.sha256(sender.encode()).hexdigest()[:16]


def decode(body: bytes | str) -> dict[str, Any]:
    """A JSON object, or MessageError."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MessageError("body is not JSON") from None
    if not isinstance(data, dict):
        raise MessageError("body is not a JSON object")
    return data


def parse(data: Mapping[str, Any], client_id: str) -> list[Inbound]:
    """The Inbounds of one bot message that came by app `client_id` ([] for one with nothing to answer)."""
    msg_id = str(data.get("msgId") or "").strip()
    if not msg_id:
        raise MessageError("message has no msgId")
    msgtype = str(data.get("msgtype") or "")
    if not msgtype:
        raise MessageError("message has no msgtype")
    user = user_of(data)
    conversation_type = str(data.get("conversationType") or PRIVATE)
    conversation_id = str(data.get("conversationId") or "")
    chat = conversation_id if conversation_type == GROUP else ""
    payload = {
        "client_id": client_id,
        "conversation_type": conversation_type,
        "conversation_id": conversation_id,
        "session_webhook": str(data.get("sessionWebhook") or ""),
        "session_webhook_expires": str(_int(data.get("sessionWebhookExpiredTime"))),
        "staff_id": str(data.get("senderStaffId") or "").strip(),
        "sender_nick": str(data.get("senderNick") or ""),
    }
    if chat:
        payload["chat_title"] = str(data.get("conversationTitle") or "")
    content = data.get("content") if isinstance(data.get("content"), dict) else {}
    assert isinstance(content, dict)

    def one(msg_type: str, text: str, key: str = msg_id, **extra: str) -> Inbound:
        return Inbound(key, user, msg_type, text, chat=chat, payload={**payload, **extra})

    match msgtype:
        case "text":
            text_field = data.get("text")
            text = str(text_field.get("content") or "").strip() if isinstance(text_field, dict) else ""
            return [one("text", text)] if text else []
        case "picture":
            code = str(content.get("downloadCode") or content.get("pictureDownloadCode") or "")
            if not code:
                raise MessageError("picture without a downloadCode")
            return [one("image", "", media_id=media_ref(client_id, code))]
        case "richText":
            items = [i for i in content.get("richText") or [] if isinstance(i, dict)]
            text = "".join(str(i["text"]) for i in items if "text" in i).strip()
            codes = [str(i.get("downloadCode") or i.get("pictureDownloadCode")) for i in items
                     if i.get("downloadCode") or i.get("pictureDownloadCode")]  # fmt: skip
            found = []
            if codes:
                asked = {QUESTION_FOLLOWS: "1"} if text else {}
                found.append(one("image", "", f"{msg_id}#picture", media_id=media_ref(client_id, codes[0]), **asked))
            return found + ([one("text", text)] if text else [])
        case "audio":
            code = str(content.get("downloadCode") or "")
            extra = {"recognition": str(content.get("recognition") or "").strip()}
            if code:
                extra["media_id"] = media_ref(client_id, code)
            return [one("voice", "", **extra)]
        case "video" | "file":
            return [one(msgtype, "")]
        case _:
            return [one("unknown", "")]


def _int(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return 0
