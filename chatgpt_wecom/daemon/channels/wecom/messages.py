"""Parse WeCom callback XML: the outer encrypted envelope and the decrypted message/event.

Parsing uses ``defusedxml`` with DTDs forbidden, so entity-expansion and external-entity documents are
rejected. Fields are looked up by tag name (WeCom varies their order) and may or may not be CDATA-wrapped.
See ``wecom-protocol.md`` §2.2 and §4.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as DET
from defusedxml import DefusedXmlException

__all__ = ["Envelope", "InboundMessage", "MessageError", "parse_envelope", "parse_message"]

_CREATE_TIME_RE: Final = re.compile(r"[0-9]{1,19}")


class MessageError(ValueError):
    """The callback XML is malformed or lacks a required field; ``str(e)`` is safe to log."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The outer POST body: ``<xml><ToUserName/><AgentID/><Encrypt/></xml>``."""

    to_user: str
    agent_id: str
    encrypt: str


@dataclass(frozen=True, slots=True)
class InboundMessage:
    """A decrypted message or event. ``msg_type`` and ``event`` are lower-cased; absent fields are ``""``."""

    to_user: str
    from_user: str
    create_time: int
    msg_type: str
    agent_id: str = ""
    msg_id: str = ""
    content: str = ""
    event: str = ""
    event_key: str = ""
    media_id: str = ""
    pic_url: str = ""
    format: str = ""
    recognition: str = ""
    fields: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), hash=False)

    @property
    def is_event(self) -> bool:
        """True for ``MsgType=event`` callbacks."""
        return self.msg_type == "event"

    @property
    def dedupe_key(self) -> str:
        """Key for dropping WeCom's retries: the MsgId if present, else the event's identifying fields.

        FromUserName+CreateTime alone collides for distinct events in the same second, hence the extra parts.
        """
        if self.msg_id:
            return f"msg:{self.msg_id}"
        change_type = self.fields.get("ChangeType", "")
        return f"evt:{self.from_user}:{self.create_time}:{self.event}:{self.event_key}:{change_type}"


def _parse_root(data: str | bytes) -> Element:
    try:
        return DET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise MessageError(f"forbidden XML construct ({type(exc).__name__})") from None
    except DET.ParseError as exc:
        # ParseError's message is "<reason>: line L, column C" and never quotes the document.
        raise MessageError(f"malformed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # lone surrogates in str, unknown declared encoding in bytes
        raise MessageError(f"undecodable XML ({type(exc).__name__})") from None


def _top_level_fields(root: Element) -> dict[str, str]:
    """Map every direct child tag to its text; the first occurrence of a repeated tag wins."""
    result: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):  # skip comments / processing instructions
            result.setdefault(child.tag, child.text or "")
    return result


def parse_envelope(body: bytes) -> Envelope:
    """Parse the outer POST body; raise :class:`MessageError` if it is not XML or lacks ``<Encrypt>``."""
    raw = _top_level_fields(_parse_root(body))
    encrypt = raw.get("Encrypt", "").strip()
    if not encrypt:
        raise MessageError("envelope has no <Encrypt> value")
    return Envelope(
        to_user=raw.get("ToUserName", "").strip(),
        agent_id=raw.get("AgentID", "").strip(),
        encrypt=encrypt,
    )


def parse_message(xml_text: str) -> InboundMessage:
    """Parse decrypted message/event XML into an :class:`InboundMessage`.

    Values are stripped except ``Content``, which is kept exactly. Raises :class:`MessageError` on
    malformed or forbidden XML, a missing ``FromUserName``/``MsgType``, or a missing/non-numeric
    ``CreateTime``.
    """
    raw = _top_level_fields(_parse_root(xml_text))
    fields = {tag: (text if tag == "Content" else text.strip()) for tag, text in raw.items()}

    from_user = fields.get("FromUserName", "")
    if not from_user:
        raise MessageError("message has no FromUserName")
    msg_type = fields.get("MsgType", "").lower()
    if not msg_type:
        raise MessageError("message has no MsgType")
    create_time_text = fields.get("CreateTime", "")
    if not _CREATE_TIME_RE.fullmatch(create_time_text):
        raise MessageError("message has a missing or non-numeric CreateTime")

    return InboundMessage(
        to_user=fields.get("ToUserName", ""),
        from_user=from_user,
        create_time=int(create_time_text),
        msg_type=msg_type,
        agent_id=fields.get("AgentID", ""),
        msg_id=fields.get("MsgId", ""),
        content=fields.get("Content", "") if msg_type == "text" else "",
        event=fields.get("Event", "").lower(),
        event_key=fields.get("EventKey", ""),
        media_id=fields.get("MediaId", ""),
        pic_url=fields.get("PicUrl", ""),
        format=fields.get("Format", ""),
        recognition=fields.get("Recognition", ""),
        fields=MappingProxyType(fields),
    )
