"""Sends a reply's parts to WeCom, in order, recording each one, retrying what can be retried.

- Accepted by WeCom → `sent`. Rejected for good (81013 no such user, 45002 too long …) → `failed`, next part.
- WeCom unreachable or misconfigured (wrong secret, IP not trusted) → the part waits and is tried again with
  a growing pause (capped), so a fixed configuration lets the backlog drain by itself; after `give_up_after`
  seconds it is marked `failed`. On shutdown the wait ends at once and the part stays for the next start.
- Every try after the first (a retry, or a resend after the daemon stopped mid-request) asks WeCom to drop
  it as a duplicate, so a part that did arrive before a timeout or a crash is not shown twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass

from chatgpt_wecom.daemon.control.bus import EventBus
from chatgpt_wecom.daemon.media import MediaError
from chatgpt_wecom.daemon.pipeline.dispatcher import Postponed
from chatgpt_wecom.daemon.pipeline.rich import extension, read_image
from chatgpt_wecom.daemon.store.outbox import OutboxStore, Part
from chatgpt_wecom.daemon.wecom.api import WeComAPIError, WeComClient, WeComRejectedError

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    first_pause: float = 2.0
    max_pause: float = 300.0
    give_up_after: float = 24 * 3600.0


class Deliverer:
    def __init__(
        self, outbox: OutboxStore, wecom: WeComClient, bus: EventBus, policy: DeliveryPolicy | None = None
    ) -> None:
        self._outbox = outbox
        self._wecom = wecom
        self._bus = bus
        self._policy = policy or DeliveryPolicy()
        self._stopping = asyncio.Event()

    def stop(self) -> None:
        """End every retry wait now; unsent parts stay in the outbox."""
        self._stopping.set()

    async def deliver(self, inbox_id: int) -> None:
        for part in await self._outbox.unsent(inbox_id):
            await self._send(part)

    async def _send(self, part: Part) -> None:
        pause = self._policy.first_pause
        started = time.monotonic()
        attempts = part.attempts
        while True:
            await self._outbox.mark_sending(part.id)
            duplicate_check, attempts = attempts > 0, attempts + 1
            try:
                await self._send_once(part, duplicate_check=duplicate_check)
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
                self._failed(part, exc, final=False)
                await self._pause(pause)
                pause = min(pause * 2, self._policy.max_pause)
                continue
            await self._outbox.mark_sent(part.id)
            self._bus.publish("delivery.sent", user=part.user_id, inbox_id=part.inbox_id, part=part.part)
            return

    async def _send_once(self, part: Part, *, duplicate_check: bool) -> None:
        if part.msg_type != "image":
            await self._wecom.send_message(
                part.user_id, part.content, markdown=part.msg_type == "markdown", duplicate_check=duplicate_check
            )
            return
        # An image part holds the file's path; it is uploaded at send time (a media_id lives 3 days).
        data, content_type = await read_image(part.content)
        media_id = await self._wecom.upload_media("image", data, f"image{extension(content_type)}", content_type)
        await self._wecom.send_image(part.user_id, media_id)

    async def _pause(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._stopping.wait(), seconds)
        except TimeoutError:
            return
        raise Postponed

    def _failed(self, part: Part, exc: Exception, *, final: bool) -> None:
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
