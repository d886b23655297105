"""A question put to the model: the prompt template it may use, the gate, the running context (串聊), a picture
waiting to be asked about — then the answer as an `Outcome` carrying the exchange to store.

Failures become short replies, never silence: a context too long is retried once without the history (and the
conversation starts afresh from there); a stream cut off after parts went out ends with what was left and a note;
any other model failure gets an apology. Reads the stores, writes nothing: the worker stores the Outcome.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from chatgpt_wecom.daemon.answer.completion import Completer, CutOff
from chatgpt_wecom.daemon.answer.gate import Gate
from chatgpt_wecom.daemon.answer.turn import KEEP, Outcome, Turn
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.context import build_messages, history_in
from chatgpt_wecom.daemon.chat.templates import match_template
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.model.client import Completion, ContextTooLongError, ModelClient, ModelError
from chatgpt_wecom.daemon.store.conversations import ConversationStore, Exchange

log = logging.getLogger(__name__)


class Conversation:
    def __init__(
        self,
        conversations: ConversationStore,
        policy: LivePolicy,
        model: ModelClient,
        gate: Gate,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._conversations = conversations
        self._model = model
        self._completer = Completer(model, policy)
        self._gate = gate
        self._bus = bus
        self._clock = clock

    async def question(self, turn: Turn, question: str) -> Outcome:
        """Answer `question`, or say why not (a template without text, the gate)."""
        s = turn.settings
        system: str | None = None
        prompt = question
        request = match_template(question, turn.templates)
        if request is not None:
            if not request.text:
                return turn.reply(turn.templates.usage(request.template))
            prompt, system = request.template.user_text(request.text), request.template.system
        gate = await self._gate.admit(turn, question)
        if isinstance(gate, Outcome):
            return gate
        history: list[tuple[str, str]] = []
        if turn.session.mode == "串聊" and not turn.session.expired:
            history = await self._conversations.context(turn.row.key)
            if system is None:
                system = await self._conversations.context_system_prompt(turn.row.key)
        image = None
        if self._model.vision_available:
            image = await self._conversations.pending_image(turn.row.key, turn.row.received_at - s.session_timeout)
        return await self._ask(turn, prompt, system, history, gate, image)

    async def _ask(
        self,
        turn: Turn,
        prompt: str,
        system: str | None,
        history: list[tuple[str, str]],
        day: str,
        image: str | None = None,
    ) -> Outcome:
        s, row, mode = turn.settings, turn.row, turn.session.mode
        clear = turn.session.expired
        asked_at = self._clock()
        self._bus.publish("answer.started", user=row.user_id, inbox_id=row.id, mode=mode)
        messages = build_messages(prompt, history, budget=s.max_text, system=system)
        completion: Completion | None = None
        error: str | None = None
        partial: str | None = None
        try:
            try:
                completion, text = await self._complete(turn, messages, image)
            except ContextTooLongError:
                if not history_in(messages):
                    raise
                # Trim and retry once: without the history, and start the conversation afresh from here.
                log.info("model: context too long for %s, retrying without history", row.user_id)
                clear = True
                retry = build_messages(prompt, [], budget=s.max_text, system=system)
                completion, text = await self._complete(turn, retry, image)
        except ContextTooLongError as exc:
            error, text = f"context_too_long: {exc}", replies.context_too_long()
        except CutOff as cut:
            error, partial = str(cut.error), cut.partial
            text = f"{cut.pending}\n\n{replies.answer_cut_off()}".strip()
            log.warning("model: answer to %s cut off mid-stream: %s", row.user_id, cut.error)
        except (ModelError, MediaError) as exc:
            error, text = str(exc), replies.model_unavailable()
            log.warning("model: no answer for %s: %s", row.user_id, exc)
        answered_at = self._clock()
        if completion is not None:
            if not text and not completion.text.strip():
                text = replies.empty_answer()
            self._bus.publish(
                "answer.finished",
                user=row.user_id,
                inbox_id=row.id,
                latency=round(answered_at - asked_at, 3),
                first_token=None if completion.first_token is None else round(completion.first_token, 3),
                model=completion.model,
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
            )
        else:
            self._bus.publish("error", source="model", user=row.user_id, inbox_id=row.id, error=error)
        exchange = Exchange(
            user_id=row.user_id,
            mode=mode,
            question=prompt,
            answer=completion.text if completion else partial,
            asked_at=asked_at,
            answered_at=answered_at,
            system_prompt=system,
            model=completion.model if completion else self._model.model,
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            error=error,
            in_context=completion is not None and mode == "串聊",
            namespace=row.namespace,
            chat=row.key.chat,
        )
        answered = completion is not None
        asked_about = None if answered and image is not None else KEEP  # a picture is used for one answer
        return Outcome(text, turn.chosen, clear, exchange, day if answered else None, pending_image=asked_about)

    async def _complete(self, turn: Turn, messages: list[dict[str, str]], image: str | None) -> tuple[Completion, str]:
        s = turn.settings
        return await self._completer.complete(
            messages, turn.emit, image, max_tokens=s.max_answer_len, stream=s.stream_answers, limit=turn.part_limit,
            in_place=turn.in_place,
        )  # fmt: skip
