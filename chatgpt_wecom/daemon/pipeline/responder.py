"""Turns one inbox message into what to say back: runs the chat decisions and, for a question, the model.

No SQL and no HTTP here beyond the model call: the result is an `Outcome` that the worker stores atomically.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.commands import Ask, ResetConversation, ShowHelp, SwitchMode, parse_command
from chatgpt_wecom.daemon.chat.context import build_messages, history_in
from chatgpt_wecom.daemon.chat.session import current_session
from chatgpt_wecom.daemon.control.bus import EventBus
from chatgpt_wecom.daemon.llm import Completion, ContextTooLongError, ModelClient, ModelError
from chatgpt_wecom.daemon.store.conversations import ConversationStore, Exchange
from chatgpt_wecom.daemon.store.inbox import InboxRow

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    text: str  # the reply; "" sends nothing
    mode: str | None  # the user's chosen mode to keep (None: default_mode)
    clear_context: bool = False  # drop the running conversation before storing `exchange`
    exchange: Exchange | None = None  # a question put to the model, with its answer or error


class Responder:
    def __init__(
        self,
        settings: Settings,
        conversations: ConversationStore,
        model: ModelClient,
        bus: EventBus,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._settings = settings
        self._conversations = conversations
        self._model = model
        self._bus = bus
        self._clock = clock

    async def respond(self, row: InboxRow) -> Outcome:
        s = self._settings
        state = await self._conversations.user_state(row.user_id)
        session = current_session(
            state.mode,
            state.last_active_at,
            row.received_at,
            timeout=s.session_timeout,
            default=s.default_mode,
        )
        chosen = None if session.expired else state.mode
        if row.msg_type != "text":
            return Outcome(replies.unsupported_message(row.msg_type), chosen, session.expired)
        match parse_command(row.content):
            case ShowHelp():
                return Outcome(s.help, chosen, session.expired)
            case SwitchMode(mode):
                return Outcome(replies.mode_switched(mode, s.default_mode, s.session_timeout), mode, session.expired)
            case ResetConversation():
                return Outcome(replies.conversation_reset(s.default_mode), None, clear_context=True)
            case Ask(question):
                if len(question) > s.max_question_len:
                    text = replies.question_too_long(len(question), s.max_question_len)
                    return Outcome(text, chosen, session.expired)
                history = (
                    []
                    if session.mode == "单聊" or session.expired
                    else (await self._conversations.context(row.user_id))
                )
                return await self._ask(row, question, session.mode, history, chosen, session.expired)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _ask(
        self,
        row: InboxRow,
        question: str,
        mode: str,
        history: list[tuple[str, str]],
        chosen: str | None,
        clear: bool,
    ) -> Outcome:
        s = self._settings
        asked_at = self._clock()
        self._bus.publish("answer.started", user=row.user_id, inbox_id=row.id, mode=mode)
        messages = build_messages(question, history, budget=s.max_text)
        completion: Completion | None = None
        error: str | None = None
        try:
            try:
                completion = await self._model.complete(messages, max_tokens=s.max_answer_len)
            except ContextTooLongError:
                if not history_in(messages):
                    raise
                # Trim and retry once: without the history, and start the conversation afresh from here.
                log.info("model: context too long for %s, retrying without history", row.user_id)
                clear = True
                completion = await self._model.complete(
                    build_messages(question, [], budget=s.max_text), max_tokens=s.max_answer_len
                )
        except ContextTooLongError as exc:
            error, text = f"context_too_long: {exc}", replies.context_too_long()
        except ModelError as exc:
            error, text = str(exc), replies.model_unavailable()
            log.warning("model: no answer for %s: %s", row.user_id, exc)
        answered_at = self._clock()
        if completion is not None:
            text = completion.text.strip() or "（模型没有给出内容）"
            self._bus.publish(
                "answer.finished",
                user=row.user_id,
                inbox_id=row.id,
                latency=round(answered_at - asked_at, 3),
                prompt_tokens=completion.prompt_tokens,
                completion_tokens=completion.completion_tokens,
            )
        else:
            self._bus.publish("error", source="model", user=row.user_id, inbox_id=row.id, error=error)
        exchange = Exchange(
            user_id=row.user_id,
            mode=mode,
            question=question,
            answer=completion.text if completion else None,
            asked_at=asked_at,
            answered_at=answered_at,
            model=completion.model if completion else self._model.model,
            prompt_tokens=completion.prompt_tokens if completion else 0,
            completion_tokens=completion.completion_tokens if completion else 0,
            error=error,
            in_context=completion is not None and mode == "串聊",
        )
        return Outcome(text, chosen, clear, exchange)
