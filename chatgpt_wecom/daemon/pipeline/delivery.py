"""Sends a reply's parts through their channel, in order, recording each one, retrying what can be retried.

- Accepted → `sent`. `Rejected` for good (no such user, too long …) → `failed`, next part.
- Paced per recipient at the channel's rates: WeCom silently drops what exceeds 30 messages a minute (1,000 an
  hour) to one member from one app, so a part waits its turn (shown as `delivery.waiting`, not as a failure).
  Parts of one answer that queued up meanwhile go out merged, as few messages as fit the channel's text limit.
- `RetryLater` (unreachable, busy) and `Misconfigured` (wrong secret, IP not trusted) → the part waits and is
  tried again with a growing pause (capped), so a fixed configuration lets the backlog drain by itself; after
  `give_up_after` seconds it is marked `failed`. A "slow down" pauses every delivery of that channel.
  On shutdown the wait ends at once and the part stays for the next start.
- While a part waits to be retried its conversation is *blocked*: `blocked()` says why and since when (status shows
  it), and `retry_now()` ends the wait at once (`ctl retry`), after the operator fixed what was wrong.
- The log tells a channel's trouble once, not every try: the first failure (a configuration error is told by the
  channel itself, with its fix), then, when a part goes through again, how many tries failed over how long.
- Every try of a part carries the same `variant` (chosen at its first try, distinct from equal parts to the same
  chat), so a channel whose transport deduplicates sends the same request every time: a part that did arrive
  before a lost reply, a timeout or a crash is dropped when sent again, and 帮助 asked twice is answered twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass

from chatgpt_wecom.daemon.channels.base import Channel, Misconfigured, Origin, Outgoing, Rejected, RetryLater
from chatgpt_wecom.daemon.events import ANSWER_PREVIEW, EventBus, preview
from chatgpt_wecom.daemon.pipeline.dispatcher import Postponed
from chatgpt_wecom.daemon.pipeline.pacing import Pacer, Rate
from chatgpt_wecom.daemon.store.outbox import OutboxStore, Part

log = logging.getLogger(__name__)

VARIANT_WINDOW = 4 * 3600.0  # equal parts to one chat within this long get distinct variants (WeCom's longest check)


@dataclass(slots=True)
class Blocked:
    """A conversation whose next part cannot be delivered now and waits to be tried again."""

    channel: str
    user: str
    chat: str
    inbox_id: int
    reason: str  # the last failure, safe to show (no secrets)
    hint: str | None  # the operator's fix, for a configuration error
    since: float  # unix time of the first failed try of this part
    tries: int  # failed tries so far
    next_try_at: float  # unix time the wait ends by itself


@dataclass(slots=True)
class _Trouble:
    """A channel's failing deliveries since the last one that went through: told once, then counted."""

    since: float  # monotonic
    failures: int
    last: str


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    first_pause: float = 2.0
    max_pause: float = 300.0
    give_up_after: float = 24 * 3600.0
    rate_limited_pause: float = 60.0  # after a "slow down" (WeCom blocks a caller for the minute it exceeded)


class Deliverer:
    def __init__(
        self,
        outbox: OutboxStore,
        channels: Mapping[str, Channel],
        bus: EventBus,
        policy: DeliveryPolicy | None = None,
        rates: tuple[Rate, ...] | None = None,  # instead of each channel's own (tests scale them down)
    ) -> None:
        self._outbox = outbox
        self._channels = channels
        self._bus = bus
        self._policy = policy or DeliveryPolicy()
        self._rates = rates
        self._pacers: dict[str, Pacer] = {}
        self._stopping = asyncio.Event()
        self._slow_down_until: dict[str, float] = {}  # monotonic, per channel: it asked to be called less until then
        self.waiting = 0  # parts waiting their turn now (a recipient's pace, a "slow down")
        self._blocked: dict[tuple[str, str], Blocked] = {}  # (channel, chat) -> why its next part waits
        self._wake: dict[tuple[str, str], asyncio.Event] = {}  # (channel, chat) -> ends its retry wait
        self._trouble: dict[str, _Trouble] = {}  # channel -> failures since the last part that went through

    async def resume(self) -> int:
        """Count the tries made before a restart in the pacing windows; returns how many were found."""
        window = max((r.seconds for name in self._channels for r in self._pacer(name).rates), default=0.0)
        recent = await self._outbox.recent_attempts(time.time() - window)
        for channel, chat, at in recent:
            if channel in self._channels:
                self._pacer(channel).seed(chat, at)
        return len(recent)

    def _pacer(self, channel: str) -> Pacer:
        """The pacer of a channel's recipients, at its rates (or the ones given instead)."""
        if channel not in self._pacers:
            rates = self._rates if self._rates is not None else self._channels[channel].capabilities.rates
            self._pacers[channel] = Pacer(rates)
        return self._pacers[channel]

    def stop(self) -> None:
        """End every wait now; unsent parts stay in the outbox."""
        self._stopping.set()

    def blocked(self) -> list[Blocked]:
        """The conversations waiting to retry a delivery, the longest blocked first."""
        return sorted(self._blocked.values(), key=lambda b: b.since)

    def retry_now(self, user: str | None = None) -> list[Blocked]:
        """End the retry wait of `user`'s conversations (None: every one) so their parts are tried at once;
        returns the ones woken. The channels forget remembered configuration errors first (it may be fixed)."""
        woken = [b for b in self.blocked() if user is None or user.casefold() in (b.user.casefold(), b.chat.casefold())]
        for channel in {b.channel for b in woken}:
            self._channels[channel].forget_errors()
        for b in woken:
            if (wake := self._wake.get((b.channel, b.chat))) is not None:
                wake.set()
        return woken

    async def deliver(self, inbox_id: int) -> None:
        while parts := await self._outbox.unsent(inbox_id):
            if await self._wait_turn(parts[0]):
                parts = await self._outbox.unsent(inbox_id)  # more may have been queued while it waited
            await self._send(*await self._merge(parts))

    async def _wait_turn(self, part: Part) -> bool:
        """Wait while the recipient's pace or a "slow down" from the channel says so; True if it waited."""
        waited, pacer = False, self._pacer(part.channel)
        while True:
            pace = pacer.wait(part.chat)
            slow_down = self._slow_down_until.get(part.channel, 0.0) - time.monotonic()
            wait = max(pace, slow_down)
            if wait <= 0:
                return waited
            rates = ", ".join(str(r) for r in pacer.rates)
            reason = f"{part.channel} takes {rates} per recipient" if pace >= slow_down else "asked to slow down"
            if not waited:
                log.info("delivery: part %d of message %d to %s waits %.0f s: %s",
                         part.part, part.inbox_id, part.user_id, wait, reason)  # fmt: skip
                self._bus.publish("delivery.waiting", user=part.user_id, inbox_id=part.inbox_id, part=part.part,
                                  channel=part.channel, seconds=round(wait, 1), reason=reason)  # fmt: skip
            waited = True
            self.waiting += 1
            try:
                await self._pause(wait)
            finally:
                self.waiting -= 1

    async def _merge(self, parts: list[Part]) -> tuple[Part, int]:
        """The first part, with the untried text parts queued behind it that fit into one message; and how many
        stored parts it now carries."""
        head, content, rest = parts[0], parts[0].content, []
        if head.attempts or head.msg_type == "image":
            return head, 1
        for part in parts[1:]:
            joined = f"{content}\n\n{part.content}"
            limit = self._channels[head.channel].capabilities.text_limit
            if part.attempts or part.msg_type != head.msg_type or len(joined.encode()) > limit:
                break
            content = joined
            rest.append(part)
        return (await self._outbox.merge(head, rest, content) if rest else head), 1 + len(rest)

    async def _send(self, part: Part, carried: int = 1) -> None:
        pause = self._policy.first_pause
        started, retries = time.monotonic(), 0
        channel = self._channels[part.channel]
        while True:
            if self._slow_down_until.get(part.channel, 0.0) > time.monotonic():
                await self._wait_turn(part)
            part = await self._outbox.start_attempt(part, time.time(), VARIANT_WINDOW)
            self._pacer(part.channel).record(part.chat)  # a try whose reply is lost may still have arrived
            try:
                media_ref = await channel.send(self._outgoing(part))
            except Rejected as exc:
                await self._outbox.mark_failed(part.id, str(exc))
                self._unblock(part)
                self._failed(part, exc, final=True)
                return
            except RetryLater as exc:
                await self._outbox.mark_retry(part.id, str(exc))
                if time.monotonic() - started > self._policy.give_up_after:
                    await self._outbox.mark_failed(part.id, str(exc))
                    self._unblock(part)
                    self._failed(part, exc, final=True)
                    return
                # a channel's trouble is logged once (a configuration error by the channel, with its fix), not each try
                self._failed(part, exc, final=False, logged=self._troubled(part.channel, exc))
                retries += 1
                if exc.slow_down:
                    pause = max(pause, self._policy.rate_limited_pause)
                    until = max(self._slow_down_until.get(part.channel, 0.0), time.monotonic() + pause)
                    self._slow_down_until[part.channel] = until
                self._block(part, exc, retries, pause)
                woken = await self._pause(pause, (part.channel, part.chat))
                pause = self._policy.first_pause if woken else min(pause * 2, self._policy.max_pause)
                continue
            except Exception as exc:  # a defect, not the transport: the part fails visibly instead of blocking the rest
                log.exception("delivery: part %d of message %d to %s failed", part.part, part.inbox_id, part.user_id)
                await self._outbox.mark_failed(part.id, repr(exc))
                self._unblock(part)
                self._failed(part, exc, final=True, logged=True)
                return
            if media_ref is not None and media_ref != part.media_id:
                await self._outbox.set_media(part.id, media_ref, time.time())
            await self._outbox.mark_sent(part.id)
            self._unblock(part)
            if retries:
                log.debug("delivery: part %d of message %d to %s sent after %d retries",
                          part.part, part.inbox_id, part.user_id, retries)  # fmt: skip
            if (trouble := self._trouble.pop(part.channel, None)) is not None:
                log.info("delivery through %s works again, after %d failed tries in %.0f s (the last: %s)",
                            part.channel, trouble.failures, time.monotonic() - trouble.since, trouble.last)  # fmt: skip
            text = {} if part.msg_type == "image" else {"text": preview(part.content, ANSWER_PREVIEW)}
            self._bus.publish("delivery.sent", user=part.user_id, inbox_id=part.inbox_id, part=part.part,
                              channel=part.channel, parts=carried, **text)  # fmt: skip
            return

    @staticmethod
    def _outgoing(part: Part) -> Outgoing:
        assert part.variant is not None  # set by start_attempt
        origin = Origin(
            message_id=part.message_key.removeprefix(f"{part.channel}:"), user_id=part.user_id, chat=part.chat,
            received_at=part.received_at, payload=json.loads(part.payload),
        )  # fmt: skip
        return Outgoing(user_id=part.user_id, chat=part.chat, kind=part.msg_type, content=part.content,
                        variant=part.variant, media_ref=part.media_id, media_at=part.media_at, part=part.part,
                        origin=origin)  # fmt: skip

    def _troubled(self, channel: str, exc: RetryLater) -> bool:
        """Count a failed try of `channel`; True when it need not be logged (told already, or by the channel)."""
        trouble = self._trouble.get(channel)
        if trouble is None:
            self._trouble[channel] = _Trouble(time.monotonic(), 1, str(exc))
            return isinstance(exc, Misconfigured)  # the channel has told it, with the operator's fix
        trouble.failures, trouble.last = trouble.failures + 1, str(exc)
        return True

    def _block(self, part: Part, exc: RetryLater, tries: int, pause: float) -> None:
        """`part`'s conversation is blocked (since its first failed try) until a try goes through."""
        key, now = (part.channel, part.chat), time.time()
        old = self._blocked.get(key)
        since = old.since if old is not None and old.inbox_id == part.inbox_id else now
        hint = exc.hint if isinstance(exc, Misconfigured) else None
        self._blocked[key] = Blocked(part.channel, part.user_id, part.chat, part.inbox_id, str(exc), hint,
                                     since, tries, now + pause)  # fmt: skip

    def _unblock(self, part: Part) -> None:
        old = self._blocked.get((part.channel, part.chat))
        if old is not None and old.inbox_id == part.inbox_id:
            del self._blocked[(part.channel, part.chat)]

    async def _pause(self, seconds: float, key: tuple[str, str] | None = None) -> bool:
        """Wait `seconds`; True when `retry_now` ended the wait of `key` early. Raises Postponed on shutdown."""
        wake = None
        if key is not None:
            wake = self._wake[key] = asyncio.Event()
        waits = [asyncio.ensure_future(self._stopping.wait())]
        if wake is not None:
            waits.append(asyncio.ensure_future(wake.wait()))
        try:
            await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
            if key is not None and self._wake.get(key) is wake:
                del self._wake[key]
        if self._stopping.is_set():
            raise Postponed
        return wake is not None and wake.is_set()

    def _failed(self, part: Part, exc: Exception, *, final: bool, logged: bool = False) -> None:
        if not logged:
            log.warning(
                "delivery: part %d of message %d to %s %s: %s",
                part.part, part.inbox_id, part.user_id, "dropped" if final else "will be retried", exc,
            )  # fmt: skip
        hint = {"hint": exc.hint} if isinstance(exc, Misconfigured) else {}  # the operator's fix, for the Live page
        self._bus.publish(
            "delivery.failed",
            user=part.user_id,
            inbox_id=part.inbox_id,
            part=part.part,
            channel=part.channel,
            error=str(exc),
            final=final,
            **hint,
        )
