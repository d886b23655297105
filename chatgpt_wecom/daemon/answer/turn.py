"""One message on its way to an answer: what is known about it (`Turn`), what it comes to (`Outcome`), and how
the finished parts of a streamed answer leave early (`Emit`).

An `Outcome` is the whole effect of a message — the reply, the mode, the exchange, the quota count, the picture
kept for later — so the worker can store it in one transaction: a crash before the commit leaves no trace.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat.session import Session
from chatgpt_wecom.daemon.chat.templates import Templates
from chatgpt_wecom.daemon.store.conversations import Exchange
from chatgpt_wecom.daemon.store.inbox import InboxRow

Emit = Callable[[str], Awaitable[None]]  # store and send one finished part of a streamed answer


@dataclass(frozen=True, slots=True)
class InPlace:
    """The channel shows the answer as one message growing in place (the AI bot): no early parts — a part ends
    only when the message is full or has grown for `max_age` seconds (0: no limit) — and `show` is given the
    text of the message being written, censored, as it grows."""

    show: Callable[[str], None]
    max_age: float = 0.0


class Keep(enum.Enum):
    """Leave a stored value as it is — where None already means "clear it"."""

    KEEP = "keep"


KEEP: Final = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Outcome:
    text: str  # the reply as the user sees it; "" sends nothing
    mode: str | None  # the user's chosen mode to keep (None: default_mode)
    clear_context: bool = False  # drop the running conversation before storing `exchange`
    exchange: Exchange | None = None  # a question put to the model, with its (uncensored) answer or error
    quota_day: str | None = None  # count one question against the quota of this local day
    image_path: str | None = None  # an image to send after the text
    pending_image: str | Keep | None = KEEP  # a picture kept for the next question (a path), or None: asked about


@dataclass(frozen=True, slots=True)
class Turn:
    """What the decisions so far know about one message. `settings` and `templates` are those in force when the
    message began: a reload meanwhile applies from the next message on."""

    row: InboxRow
    session: Session
    chosen: str | None  # the mode the user chose; None once the session expired
    settings: Settings
    templates: Templates
    emit: Emit | None = None
    part_limit: int = 2048  # UTF-8 bytes of one part on the message's channel (streamed parts are cut to it)
    in_place: InPlace | None = None  # the channel shows the answer growing in one message

    def reply(self, text: str, *, mode: str | None = None, clear: bool = False) -> Outcome:
        """A reply that leaves everything else as it was (but ends an expired session's context)."""
        return Outcome(text, mode if mode is not None else self.chosen, clear or self.session.expired)
