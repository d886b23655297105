"""Sends a reply's parts to WeCom, in order, recording each one, retrying what can be retried.

- Accepted by WeCom → `sent`. Rejected for good (81013 no such user, 45002 too long …) → `failed`, next part.
- Paced per member: WeCom silently drops what exceeds 30 messages a minute (1,000 an hour) to one member from one
  app, so a part waits its turn (shown as `delivery.waiting`, not as a failure). Parts of one answer that queued
  up meanwhile go out merged, as few messages as fit the text limit.
- WeCom unreachable or misconfigured (wrong secret, IP not trusted) → the part waits and is tried again with
  a growing pause (capped), so a fixed configuration lets the backlog drain by itself; after `give_up_after`
  seconds it is marked `failed`. "Slow down" (45009/45033) pauses every delivery, not only this one.
  On shutdown the wait ends at once and the part stays for the next start.
- Every try of a part is the same request, the first included, with WeCom's duplicate check on: a part that did
  arrive before a lost reply, a timeout or a crash is dropped by WeCom when it is sent again, not shown twice.
  Two parts with equal text (帮助 asked twice) get different check intervals, so neither drops the other.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.images import extension, read_image
from chatgpt_wecom.daemon.pipeline.dispatcher import Postponed
from chatgpt_wecom.daemon.pipeline.pacing import Pacer
from chatgpt_wecom.daemon.pipeline.split import WECOM_TEXT_LIMIT
from chatgpt_wecom.daemon.store.outbox import OutboxStore, Part
from chatgpt_wecom.daemon.wecom.api import (
    DUPLICATE_CHECK_INTERVAL,
    WeComAPIError,
    WeComClient,
    WeComRateLimitedError,
    WeComRejectedError,
)

log = logging.getLogger(__name__)

# Intervals for WeCom's duplicate check: the default first, one less for each equal part sent within it.
CHECK_INTERVALS = range(DUPLICATE_CHECK_INTERVAL, 59, -1)
MEDIA_REUSE = 2 * 24 * 3600.0  # an uploaded image's media_id is reused this long (WeCom keeps it 3 days)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    first_pause: float = 2.0
    max_pause: float = 300.0
    give_up_after: float = 24 * 3600.0
    rate_limited_pause: float = 60.0  # WeCom blocks a caller that exceeded a per-minute limit for 60 s


class Deliverer:
    def __init__(
        self,
        outbox: OutboxStore,
        wecom: WeComClient,
        bus: EventBus,
        pacer: Pacer,
        policy: DeliveryPolicy | None = None,
        text_limit: int = WECOM_TEXT_LIMIT,
    ) -> None:
        self._outbox = outbox
        self._wecom = wecom
        self._bus = bus
        self._pacer = pacer
        self._policy = policy or DeliveryPolicy()
        self._text_limit = text_limit
        self._stopping = asyncio.Event()
        self._slow_down_until = 0.0  # monotonic; WeCom said 45009/45033: every delivery waits until then

    async def resume(self) -> int:
        """Count the tries made before a restart in the pacing windows; returns how many were found."""
        window = max((r.seconds for r in self._pacer.rates), default=0.0)
        recent = await self._outbox.recent_attempts(time.time() - window)
        for user, at in recent:
            self._pacer.seed(user, at)
        return len(recent)

    def stop(self) -> None:
        """End every wait now; unsent parts stay in the outbox."""
        self._stopping.set()

    async def deliver(self, inbox_id: int) -> None:
        while parts := await self._outbox.unsent(inbox_id):
            if await self._wait_turn(parts[0]):
                parts = await self._outbox.unsent(inbox_id)  # more may have been queued while it waited
            await self._send(*await self._merge(parts))

    async def _wait_turn(self, part: Part) -> bool:
        """Wait while the member's pace or a "slow down" from WeCom says so; True if it waited."""
        waited = False
        while True:
            pace = self._pacer.wait(part.user_id)
            slow_down = self._slow_down_until - time.monotonic()
            wait = max(pace, slow_down)
            if wait <= 0:
                return waited
            reason = f"WeCom takes {self._rates()} per member" if pace >= slow_down else "WeCom asked to slow down"
            if not waited:
                log.info("delivery: part %d of message %d to %s waits %.0f s: %s",
                         part.part, part.inbox_id, part.user_id, wait, reason)  # fmt: skip
                self._bus.publish("delivery.waiting", user=part.user_id, inbox_id=part.inbox_id, part=part.part,
                                  seconds=round(wait, 1), reason=reason)  # fmt: skip
            waited = True
            await self._pause(wait)

    def _rates(self) -> str:
        return ", ".join(str(r) for r in self._pacer.rates)

    async def _merge(self, parts: list[Part]) -> tuple[Part, int]:
        """The first part, with the untried text parts queued behind it that fit into one message; and how many
        stored parts it now carries."""
        head, content, rest = parts[0], parts[0].content, []
        if head.attempts or head.msg_type == "image":
            return head, 1
        for part in parts[1:]:
            joined = f"{content}\n\n{part.content}"
            if part.attempts or part.msg_type != head.msg_type or len(joined.encode()) > self._text_limit:
                break
            content = joined
            rest.append(part)
        return (await self._outbox.merge(head, rest, content) if rest else head), 1 + len(rest)

    async def _send(self, part: Part, carried: int = 1) -> None:
        pause = self._policy.first_pause
        started, retries = time.monotonic(), 0
        window = float(max(CHECK_INTERVALS))
        while True:
            if self._slow_down_until > time.monotonic():
                await self._wait_turn(part)
            part = await self._outbox.start_attempt(part, time.time(), CHECK_INTERVALS, window)
            self._pacer.record(part.user_id)  # a try whose reply is lost may still have arrived: it counts
            try:
                await self._send_once(part)
            except (WeComRejectedError, MediaError) as exc:
                await self._outbox.mark_failed(part.id, str(exc))
                self._failed(part, exc, final=True)
                return
            except WeComAPIError as exc:
                await self._outbox.mark_retry(part.id, str(exc))
                if time.monotonic() - started > self._policy.give_up_after:
                    await self._outbox.mark_failed(part.id, str(exc))
                    self._failed(part, exc, final=True)
                    return
                self._failed(part, exc, final=False, logged=retries > 0)  # the first retry is logged, not each
                retries += 1
                if isinstance(exc, WeComRateLimitedError):
                    pause = max(pause, self._policy.rate_limited_pause)
                    self._slow_down_until = max(self._slow_down_until, time.monotonic() + pause)
                await self._pause(pause)
                pause = min(pause * 2, self._policy.max_pause)
                continue
            except Exception as exc:  # a defect, not WeCom: the part fails visibly instead of blocking the rest
                log.exception("delivery: part %d of message %d to %s failed", part.part, part.inbox_id, part.user_id)
                await self._outbox.mark_failed(part.id, repr(exc))
                self._failed(part, exc, final=True, logged=True)
                return
            await self._outbox.mark_sent(part.id)
            if retries:
                log.info("delivery: part %d of message %d to %s sent after %d retries",
                         part.part, part.inbox_id, part.user_id, retries)  # fmt: skip
            self._bus.publish("delivery.sent", user=part.user_id, inbox_id=part.inbox_id, part=part.part, parts=carried)
            return

    async def _send_once(self, part: Part) -> None:
        assert part.dup_interval is not None  # set by start_attempt
        if part.msg_type != "image":
            await self._wecom.send_message(
                part.user_id,
                part.content,
                markdown=part.msg_type == "markdown",
                duplicate_check_interval=part.dup_interval,
            )
            return
        # An image part holds the file's path; it is uploaded at the first try and the media_id kept, so that a
        # resend is the same request (a media_id lives 3 days; an older one is uploaded again).
        media_id = part.media_id
        if media_id is None or part.media_at is None or time.time() - part.media_at > MEDIA_REUSE:
            data, content_type = await read_image(part.content)
            media_id = await self._wecom.upload_media("image", data, f"image{extension(content_type)}", content_type)
            await self._outbox.set_media(part.id, media_id, time.time())
        await self._wecom.send_image(part.user_id, media_id, duplicate_check_interval=part.dup_interval)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise Postponed

    def _failed(self, part: Part, exc: Exception, *, final: bool, logged: bool = False) -> None:
        if not logged:
            log.warning(
                "delivery: part %d of message %d to %s %s: %s",
                part.part, part.inbox_id, part.user_id, "dropped" if final else "will be retried", exc,
            )  # fmt: skip
        self._bus.publish(
            "delivery.failed",
            user=part.user_id,
            inbox_id=part.inbox_id,
            part=part.part,
            error=str(exc),
            final=final,
        )
