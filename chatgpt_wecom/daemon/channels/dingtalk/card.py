"""AI card streaming (`stream_mode: true` with `card_template_id`, dingtalk-protocol.md §5): the answer grows in
one card, typewriter-style, instead of arriving paragraph by paragraph.

- The card is created (createAndDeliver, callbackType STREAM) when the model's first words are shown — not for
  replies that do not stream (commands, refusals): they stay plain messages. Private chat: space
  `IM_ROBOT.<staffId>`; group: `IM_GROUP.<conversationId>`, delivered by the app's robot.
- Updates (`PUT /v1.0/card/streaming`, the whole markdown so far, `isFull`) go out at most one per `interval`
  (≥ 1 s in production: every update is an OpenAPI call under the app's QPS and monthly quota), the newest text
  only; a text a newer one replaced is skipped.
- Part 0 of the stored answer finishes the card (`isFinalize`). The card takes at most `CARD_TEXT_LIMIT` bytes
  (DingTalk advises ≤ 3 KB per card): a longer answer goes on in plain messages, as parts of their own.
- A stop mid-answer ends the card in its failed state (`isError`); the rest comes after the restart as messages.
- Any card failure (template unknown, permission Card.Streaming.Write / Card.Instance.Write missing, space
  refused) stops the card: part 0 and the rest go out as plain messages, so the user always gets the answer.
- The template binds its markdown to the variable `content` (chatgpt-dingtalk's template does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from typing import Any, Final

from chatgpt_wecom.daemon.channels.base import LiveReply, Origin
from chatgpt_wecom.daemon.channels.dingtalk.api import DingTalkClient, DingTalkError
from chatgpt_wecom.daemon.channels.dingtalk.messages import GROUP

log = logging.getLogger(__name__)

CONTENT_KEY: Final = "content"
CARD_TEXT_LIMIT: Final = 3000


def create_body(client_id: str, template_id: str, out_track_id: str, payload: dict[str, str] | Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "cardTemplateId": template_id, "outTrackId": out_track_id, "callbackType": "STREAM",
        "cardData": {"cardParamMap": {CONTENT_KEY: ""}}, "userIdType": 1,
    }  # fmt: skip
    if payload.get("conversation_type") == GROUP:
        body["openSpaceId"] = f"dtv1.card//IM_GROUP.{payload.get('conversation_id', '')}"
        body["imGroupOpenSpaceModel"] = {"supportForward": True}
        body["imGroupOpenDeliverModel"] = {"robotCode": client_id}
    else:
        body["openSpaceId"] = f"dtv1.card//IM_ROBOT.{payload.get('staff_id', '')}"
        body["imRobotOpenSpaceModel"] = {"supportForward": True}
        body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT"}
    return body


class CardReply(LiveReply):
    """One answer's card: created at the first `show`, updated at most once per `interval`, finished by part 0."""

    def __init__(self, client: DingTalkClient, origin: Origin, template_id: str, interval: float) -> None:
        self._client = client
        self._origin = origin
        self._template = template_id
        self._interval = interval
        self.out_track_id = f"cw-{uuid.uuid4().hex}"
        self.created = False
        self.failed = False
        self._latest = ""
        self._sent = ""
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()  # one call on the card at a time

    def show(self, text: str) -> None:
        if self.failed or self._closing.is_set():
            return
        self._latest = text
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"dingtalk-card:{self.out_track_id}")
        self._wake.set()

    async def close(self) -> None:
        self._closing.set()
        self._wake.set()
        if self._task is not None:
            await self._task

    async def finish(self, text: str) -> bool:
        """The card's final state; False when there is no card to finish (the caller sends a message instead)."""
        await self.close()
        if not self.created or self.failed:
            return False
        try:
            await self._update(text, final=True)
        except DingTalkError as exc:
            log.warning("dingtalk: card %s not finished (%s); the answer goes as a message", self.out_track_id, exc)
            return False
        return True

    async def abandon(self) -> None:
        """The daemon stops with this answer unfinished: the card ends in its failed state, showing what it showed
        (after the restart the rest comes as messages, with a note that the answer was interrupted)."""
        await self.close()
        if self.created and not self.failed:
            with contextlib.suppress(DingTalkError):
                await self._update(self._sent, final=True, error=True)

    async def _run(self) -> None:
        try:
            async with self._lock:
                body = create_body(self._client.client_id, self._template, self.out_track_id, self._origin.payload)
                await self._client.create_card(body)
            self.created = True
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self._latest != self._sent:
                    await self._update(self._latest, final=False)
                if self._closing.is_set():
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._closing.wait(), self._interval)
        except DingTalkError as exc:
            self.failed = True
            log.warning("dingtalk: AI card for %s stopped (%s); the answer goes as messages", self._origin.user_id,
                        exc)  # fmt: skip

    async def _update(self, text: str, *, final: bool, error: bool = False) -> None:
        body = {"outTrackId": self.out_track_id, "guid": uuid.uuid4().hex, "key": CONTENT_KEY, "content": text,
                "isFull": True, "isFinalize": final, "isError": error}  # fmt: skip
        async with self._lock:
            await self._client.stream_card(body)
        self._sent = text
