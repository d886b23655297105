"""What every channel is: the small interface between the pipeline and one transport.

A channel turns its transport's frames into `Inbound`s handed to the intake, and delivers what the pipeline
stored. The pipeline never names a channel's wire format or tests its name: it asks the `Capabilities`.

- Identity: a person is `(namespace, user_id)`; channels of one directory share a namespace (the WeCom app and
  the WeCom AI bot are both `wecom`). A `chat` is where the conversation happens: the user's id for a private
  chat, a group's id for a group.
- Delivery: `send(Outgoing)` raises one of three neutral errors — `RetryLater` (the transport is down or busy;
  `slow_down` when it asked to be called less), `Rejected` (this message never will go), `Misconfigured` (the
  operator must fix something; `hint` says what). Anything else is a defect.
- Idempotent resends: every try of one stored part carries the same `variant`, and equal parts to one recipient
  get distinct variants; a channel whose transport deduplicates (WeCom's duplicate check) builds the same request
  from the same `Outgoing`, so a resend after a lost reply is dropped by the transport, not shown twice.
- Lifecycle: an HTTP channel adds routes to the public app (`add_routes`); a connection channel opens and keeps its
  own connection between `start()` and `stop()`. Every channel reports its `ChannelState`.
- Answers that grow in place (`capabilities.streams_in_place`): `live_reply(origin)` gives a `LiveReply` the worker
  shows the answer-so-far on while the model writes; the stored parts are delivered as always, and the channel
  turns part 0 of an answer into the final state of that live message (the rest are messages of their own).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Protocol

from aiohttp import web

from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.pipeline.pacing import Rate


@dataclass(frozen=True, slots=True)
class Capabilities:
    text_limit: int  # UTF-8 bytes in one message
    formats: frozenset[str]  # reply formats it can show: "markdown", "text"
    streams_in_place: bool  # one message that grows as the answer is written (else: a message per part)
    sends_unprompted: bool  # may write to a user who did not just write
    media_in: frozenset[str]  # what users may send besides text: "voice", "image"
    media_out: frozenset[str]  # what it can send besides text: "image"
    rates: tuple[Rate, ...] = ()  # per recipient; deliveries are paced to stay within them
    message_max_age: float = 0.0  # seconds one message may keep growing in place (0: no limit)


# Payload key of a picture that came with its question in one message (the AI bot's mixed, DingTalk's richText):
# the picture is stored first and kept without a reply; the question, stored next, is answered about it.
QUESTION_FOLLOWS = "question_follows"


@dataclass(frozen=True, slots=True)
class Inbound:
    """A message as a channel received it, before it is stored. `dedupe_key` is the transport's own id for it
    (the intake prefixes the channel's name and stamps the time); `payload` holds what the channel needs later
    (media references) and what the pipeline reads: `media_id`, `recognition`, `QUESTION_FOLLOWS`."""

    dedupe_key: str
    user_id: str
    msg_type: str  # text | voice | image | …
    content: str
    chat: str = ""  # a group's id; "" is the private chat with `user_id`
    payload: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Origin:
    """The message an answer answers, as the channel received it: enough to reply to it in place."""

    message_id: str  # the transport's id of it (its `Inbound.dedupe_key`)
    user_id: str
    chat: str  # "" or the user's id: the private chat; else a group's id
    received_at: float  # unix time it was stored
    payload: Mapping[str, str] = field(default_factory=dict)  # the `Inbound.payload` the channel stored with it


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One stored part, on its way: to whom, what, and what keeps every try of it the same request."""

    user_id: str
    chat: str  # "" or the user's id: the private chat; else a group's id
    kind: str  # "text" | "markdown" | "image" (content is then a stored image file's path)
    content: str
    variant: int  # the same for every try of this part; differs between equal parts to one recipient
    media_ref: str | None = None  # an upload an earlier try made (the channel decides how long it is valid)
    media_at: float | None = None
    part: int = 0  # its place in the answer: part 0 is the first message (the live one, where the channel has it)
    origin: Origin | None = None  # the message it answers (None: a message nobody asked for)


@dataclass(frozen=True, slots=True)
class Feedback:
    """A user's verdict on an answer (the AI bot's 👍/👎). `answer_id` is the id the channel gave the answer: the
    `Origin.message_id` of the message it answered."""

    answer_id: str
    user_id: str
    rating: str  # "good" | "bad" | "cancelled" (a verdict taken back)
    comment: str = ""
    reasons: tuple[int, ...] = ()


class LiveReply(ABC):
    """A message shown at once and rewritten as the answer grows. `show` never waits: the channel sends the
    newest text when the transport is ready and skips what a newer text replaced. The final text arrives as
    part 0 through `Channel.send`; `close` ends the showing (after the answer is stored, or when it failed)."""

    @abstractmethod
    def show(self, text: str) -> None:
        """The answer so far (censored, within the channel's text limit)."""

    @abstractmethod
    async def close(self) -> None:
        """No more `show`s: wait for the frame in flight, stop the sender."""


class DeliveryError(Exception):
    """A message could not be delivered; `str(err)` is safe to log (no secrets, no tokens)."""


class RetryLater(DeliveryError):
    def __init__(self, message: str, *, slow_down: bool = False) -> None:
        super().__init__(message)
        self.slow_down = slow_down  # the transport asked to be called less often, not only this message


class Rejected(DeliveryError):
    """This message will never be accepted (no such user, too long, unknown type …)."""


class Misconfigured(RetryLater):
    """The operator must fix something (`hint`); the message waits and is tried again after a pause."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


class MediaUnavailable(MediaError):
    """Media a user sent could not be fetched; `str(err)` is safe to log."""


@dataclass
class ChannelState:
    """How a channel is doing, for status and the TUI."""

    up: bool = False
    since: float | None = None  # when it last came up
    last_error: str | None = None
    reconnects: int = 0
    detail: dict[str, str] = field(default_factory=dict)  # channel-specific facts worth showing (no secrets)

    def went_up(self) -> None:
        self.up, self.since = True, time.time()

    def failed(self, error: str) -> None:
        self.last_error = error


class Intake(Protocol):
    """Where a channel hands what it received (pipeline/intake.py)."""

    async def __call__(self, channel: Channel, message: Inbound, /) -> int | None:
        """Store, publish, dispatch `message`; its inbox id, or None for a duplicate. Ack the transport after."""

    async def feedback(self, channel: Channel, verdict: Feedback, /) -> None:
        """Store a user's verdict on an answer (the latest one counts) and tell the operators."""


class Channel(ABC):
    """One transport. Subclasses set `name`, `namespace` and `capabilities`."""

    name: ClassVar[str]  # "wecom" — also the prefix of its inbox keys and the value of the channel columns
    namespace: ClassVar[str]  # whose user ids these are ("wecom": the app and the AI bot of one corp)
    capabilities: Capabilities
    max_body: ClassVar[int] = 0  # the largest request body an HTTP channel takes (0: it takes none)

    def __init__(self) -> None:
        self.state = ChannelState()

    def add_routes(self, app: web.Application, intake: Intake) -> None:  # noqa: B027 - optional
        """An HTTP channel adds its routes to the public app; the others add nothing."""

    def claims(self, request: web.Request) -> bool:
        """Whether a request to a path no route has is this channel's (the Go project's "any path" callback)."""
        return False

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Answer a request `claims` took."""
        raise web.HTTPNotFound

    async def start(self, intake: Intake) -> None:  # noqa: B027 - optional
        """A connection channel connects (and reconnects by itself until `stop`)."""

    async def stop(self) -> None:  # noqa: B027 - optional
        """Close connections; after this no message is taken in."""

    def live_reply(self, origin: Origin) -> LiveReply | None:
        """A message that shows the answer to `origin` as it grows, opened now; None where the channel cannot (it
        does not stream in place, or `origin` came before a restart and its reply handle is gone)."""
        return None

    @abstractmethod
    async def send(self, message: Outgoing) -> str | None:
        """Deliver one part; returns a media reference to keep for later tries of it (or None).
        Raises RetryLater, Rejected or Misconfigured."""

    @abstractmethod
    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        """The bytes and MIME type of media a user sent (`ref` from the message's payload); MediaUnavailable."""

    def detail(self) -> dict[str, Any]:
        """Channel-specific facts for status (JSON-able, never a secret)."""
        return {}

    def forget_errors(self) -> None:  # noqa: B027 - optional
        """Forget a remembered configuration error (an operator says it is fixed: `ctl retry`), so the next send
        asks the platform again instead of failing at once."""
