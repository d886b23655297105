"""Messages that are not plain text: a voice message (heard, shown, then answered as text), a picture (kept for
the next question, which the vision model answers) and #图片 (an image drawn by the model, sent after the text).

Files are fetched and stored on disk here (`RichMedia`); nothing is written to the database — a picture kept for
later travels in the Outcome (`pending_image`) and is stored by the worker with the reply.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable

from chatgpt_wecom.daemon.answer.gate import Gate
from chatgpt_wecom.daemon.answer.turn import Outcome, Turn
from chatgpt_wecom.daemon.channels.base import QUESTION_FOLLOWS
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.files import RichMedia
from chatgpt_wecom.daemon.model.client import ContentPolicyError, ModelClient, ModelError
from chatgpt_wecom.daemon.store.conversations import Exchange

log = logging.getLogger(__name__)

AnswerText = Callable[[Turn, str], Awaitable[Outcome]]  # answer text as if the user had typed it


class MediaTurns:
    def __init__(
        self,
        rich: RichMedia,
        model: ModelClient,
        policy: LivePolicy,
        gate: Gate,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._rich = rich
        self._model = model
        self._policy = policy
        self._gate = gate
        self._bus = bus
        self._clock = clock

    async def voice(self, turn: Turn, answer_text: AnswerText) -> Outcome:
        """Hear a voice message, show the user what was heard, then treat it like typed text."""
        payload = turn.row.payload
        heard = str(payload.get("recognition") or "").strip()
        if not heard:
            if not self._model.speech_available:
                return turn.reply(replies.voice_unavailable())
            try:
                heard = await self._rich.hear(turn.row.channel, str(payload.get("media_id", "")))
            except (MediaError, ModelError) as exc:  # MediaError: not fetched (MediaUnavailable) too
                log.warning("voice: message %d of %s not understood: %s", turn.row.id, turn.row.user_id, exc)
                return turn.reply(replies.voice_failed())
            if not heard:
                return turn.reply(replies.voice_failed())
        # The note leads the reply: it is put before the first part that goes out (streamed or not), so it is never
        # stored on its own ahead of the answer — a restart must still see the question as unanswered.
        note = [replies.heard(self._policy.words.censor(heard))]
        emit = turn.emit

        async def emit_after_note(part: str) -> None:
            assert emit is not None
            await emit(f"{note.pop()}\n\n{part}" if note else part)

        in_place, growing = turn.in_place, turn.in_place
        if growing is not None:  # the growing message shows the note above the answer until the note is sent

            def show_after_note(text: str) -> None:
                growing.show(f"{note[0]}\n\n{text}" if note else text)

            in_place = dataclasses.replace(growing, show=show_after_note)
        streamed = dataclasses.replace(turn, emit=emit_after_note if emit is not None else None, in_place=in_place)
        outcome = await answer_text(streamed, heard)
        return dataclasses.replace(outcome, text=f"{note.pop()}\n\n{outcome.text}".strip()) if note else outcome

    async def picture(self, turn: Turn) -> Outcome:
        """Keep a picture for the user's next question (read by the vision model)."""
        if not self._model.vision_available:
            return turn.reply(replies.vision_unavailable())
        row = turn.row
        try:
            path = await self._rich.fetch_picture(row.channel, str(row.payload.get("media_id", "")), row.id)
        except MediaError as exc:  # not fetched (MediaUnavailable) or not an image
            log.warning("picture: message %d of %s not fetched: %s", row.id, row.user_id, exc)
            return turn.reply(replies.picture_failed())
        # Its question came with it (the next message): the answer to that is the reply, not "ask me about it".
        receipt = "" if row.payload.get(QUESTION_FOLLOWS) else replies.picture_received()
        return dataclasses.replace(turn.reply(receipt), pending_image=str(path))

    async def draw(self, turn: Turn, prompt: str) -> Outcome:
        """#图片: generate, store and send an image; counts against the quota."""
        if not prompt:
            return turn.reply(replies.image_usage())
        if not self._model.images_available:
            return turn.reply(replies.images_unavailable())
        gate = await self._gate.admit(turn, prompt)
        if isinstance(gate, Outcome):
            return gate
        row, asked_at = turn.row, self._clock()
        self._bus.publish("answer.started", user=row.user_id, inbox_id=row.id, mode="图片")
        try:
            path, image = await self._rich.draw(prompt, row.id)
        except ModelError as exc:
            log.warning("image: no image for %s: %s", row.user_id, exc)
            self._bus.publish("error", source="model", user=row.user_id, inbox_id=row.id, error=str(exc))
            text = replies.image_refused() if isinstance(exc, ContentPolicyError) else replies.image_failed()
            return turn.reply(text)
        answered_at = self._clock()
        exchange = Exchange(
            user_id=row.user_id, mode="图片", question=f"#图片 {prompt}", answer=f"[图片] {path.name}",
            asked_at=asked_at, answered_at=answered_at, model=turn.settings.image_model,
            system_prompt=image.revised_prompt, namespace=row.namespace, chat=row.key.chat,
        )  # fmt: skip
        self._bus.publish(
            "answer.finished", user=row.user_id, inbox_id=row.id, latency=round(answered_at - asked_at, 3),
            model=turn.settings.image_model, prompt_tokens=0, completion_tokens=0,
        )  # fmt: skip
        return Outcome("", turn.chosen, turn.session.expired, exchange, gate, image_path=str(path))
