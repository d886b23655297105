"""A message callback as the pipeline's `Inbound`s, without I/O.

- The dedupe key is the callback's msgid; the payload keeps the callback's req_id (to answer in place) and the
  chat type. A group's chat is its chatid; a private chat's is "" (the user's own).
- In a group the leading @mention is stripped (§2.2); a bare @ asks about the quoted message.
- Voice comes transcribed (`recognition`); a picture's `media_id` is its reference (media.ref); a mixed message is
  its first picture (key `msgid:image`, marked `QUESTION_FOLLOWS` when there is text: kept without a reply of its
  own) followed by its text; files and videos keep their type and no text (the pipeline says it cannot read them
  yet).
"""

from __future__ import annotations

from typing import Any

from chatgpt_wecom.daemon.channels.base import QUESTION_FOLLOWS, Inbound
from chatgpt_wecom.daemon.channels.wecom_bot import media, protocol
from chatgpt_wecom.daemon.channels.wecom_bot.protocol import Received


def messages(frame: Received, bot_name: str) -> list[Inbound]:
    """The messages one callback makes, in order (none for a malformed one or an empty text)."""
    body = frame.body
    msgid, user = str(body.get("msgid") or ""), str((body.get("from") or {}).get("userid") or "")
    if not msgid or not user:
        return []
    chattype = str(body.get("chattype") or "single")
    group = chattype == "group"
    chat = str(body.get("chatid") or "") if group else ""
    payload = {"req_id": frame.req_id, "chattype": chattype}
    msgtype = str(body.get("msgtype") or "")

    def text_of(raw: str) -> str:
        text = protocol.strip_mention(raw, bot_name) if group else raw.strip()
        return text or protocol.quote_text(body).strip()

    def message(key: str, kind: str, content: str, **extra: str) -> Inbound:
        return Inbound(key, user, kind, content, chat=chat, payload={**payload, **extra})

    def picture(key: str, image: dict[str, Any], **extra: str) -> Inbound:
        url, aeskey = str(image.get("url") or ""), str(image.get("aeskey") or "")
        return message(key, "image", "", media_id=media.ref(url, aeskey), **extra)

    if msgtype == "text":
        text = text_of(str((body.get("text") or {}).get("content") or ""))
        return [message(msgid, "text", text)] if text else []
    if msgtype == "voice":
        heard = str((body.get("voice") or {}).get("content") or "").strip()
        return [message(msgid, "voice", heard, recognition=heard)]
    if msgtype == "image":
        return [picture(msgid, body.get("image") or {})]
    if msgtype == "mixed":
        raw, image = protocol.mixed_parts(body.get("mixed") or {})
        text = text_of(raw)
        asked = {QUESTION_FOLLOWS: "1"} if text else {}
        found = [picture(f"{msgid}:image", image, **asked)] if image else []
        return found + ([message(msgid, "text", text)] if text else [])
    return [message(msgid, msgtype or "unknown", "")]
