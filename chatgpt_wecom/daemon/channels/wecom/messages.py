"""Parse WeCom callback XML: the outer encrypted envelope and the decrypted message/event.

Both documents are flat: ``<xml>`` and children that each hold some text, CDATA-wrapped or not, in an order WeCom
varies (``wecom-protocol.md`` §2.2 and §4). Each is read into a dict of the root's children, by the first of two
readers that takes it:

1. A document of exactly that shape — ``<xml>`` first, each child plain text without ``&`` or one CDATA section,
   only characters XML keeps as they are — is read with two regular expressions. No DTD, entity or reference can
   be in such a document. This is every callback WeCom sends, read in a few microseconds.
2. Anything else is parsed with ``defusedxml`` with DTDs forbidden, so entity-expansion and external-entity
   documents are rejected.

Both give what ElementTree gives (each child's ``.text``): tests/daemon/channels/wecom/test_messages.py holds the
first to the second on generated documents. Parsing both documents through defusedxml (ElementTree's pure-Python
parser) was the largest part of the daemon's own work on the ack path in bench/callback.py: ~70 µs a callback.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Final

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


# The one shape WeCom sends: after "<xml>", children of plain text (no "&", "<" or "\r") or one CDATA section.
# A CDATA section's text is read as runs of anything but "]", each "]" taken on its own unless "]>" follows: one
# pass, where a lazy ".*?" tried the end at every character (18 µs against 8 µs for an envelope's Encrypt).
_FLAT_FIELD: Final = re.compile(
    r"[ \t\n]*<([A-Za-z_][A-Za-z0-9_]*)>(?:<!\[CDATA\[([^\]]*(?:\](?!\]>)[^\]]*)*)\]\]>|([^<&\r]*))</\1>"
)
_FLAT_END: Final = re.compile(r"[ \t\n]*</xml>[ \t\n]*")
# Characters XML refuses or rewrites (a parser reads "\r" as "\n"): ElementTree reads a document with one.
_NOT_KEPT_AS_IS: Final = re.compile("[^\t\n\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _flat_fields(data: str | bytes) -> dict[str, str] | None:
    """The root's children of a document of the one flat shape, or None for any other document."""
    if isinstance(data, bytes):
        if not data.startswith(b"<xml>"):
            return None
        try:
            data = data.decode("utf-8")  # what XML without a declaration is
        except UnicodeDecodeError:
            return None
    if not data.startswith("<xml>") or _NOT_KEPT_AS_IS.search(data):
        return None
    fields: dict[str, str] = {}
    pos = len("<xml>")
    while match := _FLAT_FIELD.match(data, pos):
        tag, cdata, text = match.groups()
        value = text if cdata is None else cdata
        if "]]>" in value:  # not allowed in text (a CDATA section's text never holds it)
            return None
        fields.setdefault(tag, value)
        pos = match.end()
    return fields if _FLAT_END.fullmatch(data, pos) else None


def _top_level_fields(data: str | bytes) -> dict[str, str]:
    """Map every direct child tag of the root to its text; raise :class:`MessageError` for anything else."""
    fields = _flat_fields(data)
    return fields if fields is not None else _tree_fields(data)


def _tree_fields(data: str | bytes) -> dict[str, str]:
    """The root's children of any document, through defusedxml's ElementTree parser."""
    try:
        root = DET.fromstring(data, forbid_dtd=True)
    except DefusedXmlException as exc:
        raise MessageError(f"forbidden XML construct ({type(exc).__name__})") from None
    except DET.ParseError as exc:
        # ParseError's message is "<reason>: line L, column C" and never quotes the document.
        raise MessageError(f"malformed XML: {exc}") from None
    except (ValueError, LookupError) as exc:  # lone surrogates in str, unknown declared encoding in bytes
        raise MessageError(f"undecodable XML ({type(exc).__name__})") from None
    result: dict[str, str] = {}
    for child in root:
        if isinstance(child.tag, str):  # skip comments / processing instructions
            result.setdefault(child.tag, child.text or "")
    return result


def parse_envelope(body: bytes) -> Envelope:
    """Parse the outer POST body; raise :class:`MessageError` if it is not XML or lacks ``<Encrypt>``."""
    raw = _top_level_fields(body)
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
    raw = _top_level_fields(xml_text)
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
