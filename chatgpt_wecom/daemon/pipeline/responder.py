"""Turns one inbox message into what to say back: runs the chat decisions and, for a question, the model.

Order of decisions: access lists → paused (admins pass) → message type → command (help, modes, templates,
usage, admin commands) → for a question: template, length, sensitive words, daily quota → the model →
sensitive words in the answer.
No SQL and no HTTP here beyond reads and the model call: the result is an `Outcome` that the worker stores
atomically with the quota count.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.wecom.api import WeComAPIError
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.commands import (
    Ask,
    GenerateImage,
    ResetConversation,
    ShowHelp,
    ShowTemplates,
    ShowUsage,
    SwitchMode,
    parse_command,
)
from chatgpt_wecom.daemon.chat.context import build_messages, history_in
from chatgpt_wecom.daemon.chat.policy import check_quota, day_start, local_day, month_start, next_midnight
from chatgpt_wecom.daemon.chat.session import Session, current_session
from chatgpt_wecom.daemon.chat.stream_censor import StreamCensor
from chatgpt_wecom.daemon.chat.templates import Templates, match_template
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.media.errors import MediaError
from chatgpt_wecom.daemon.media.files import RichMedia
from chatgpt_wecom.daemon.media.images import read_image
from chatgpt_wecom.daemon.model.client import (
    Completion,
    ContentPolicyError,
    ContextTooLongError,
    ModelClient,
    ModelError,
    ModelUnavailableError,
)
from chatgpt_wecom.daemon.pipeline.admin import AdminActions
from chatgpt_wecom.daemon.pipeline.progressive import ProgressiveSplitter
from chatgpt_wecom.daemon.pipeline.split import WECOM_TEXT_LIMIT
from chatgpt_wecom.daemon.store.conversations import ConversationStore, Exchange
from chatgpt_wecom.daemon.store.inbox import InboxRow
from chatgpt_wecom.daemon.store.usage import UsageStore

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Outcome:
    text: str  # the reply as the user sees it; "" sends nothing
    mode: str | None  # the user's chosen mode to keep (None: default_mode)
    clear_context: bool = False  # drop the running conversation before storing `exchange`
    exchange: Exchange | None = None  # a question put to the model, with its (uncensored) answer or error
    quota_day: str | None = None  # count one question against the quota of this local day
    image_path: str | None = None  # an image to send after the text


Emit = Callable[[str], Awaitable[None]]  # store and send one finished part of a streamed answer
STREAM_LIMIT = 600.0  # seconds one streamed answer may take in all


class _CutOff(Exception):
    """The model stopped mid-stream after some parts were already sent; `pending` is the rest, censored."""

    def __init__(self, error: ModelError, partial: str, pending: str) -> None:
        super().__init__(str(error))
        self.error, self.partial, self.pending = error, partial, pending


@dataclass(frozen=True, slots=True)
class _Turn:
    """What the decisions so far know about one message."""

    row: InboxRow
    session: Session
    chosen: str | None
    emit: Emit | None = None

    def reply(self, text: str, *, mode: str | None = None, clear: bool = False) -> Outcome:
        return Outcome(text, mode if mode is not None else self.chosen, clear or self.session.expired)


def _actor(row: InboxRow) -> str:
    """Who to name in the audit log: the admin, or the operator who typed it in the playground as that admin."""
    if row.payload.get("source") == "playground":
        return f"{row.payload.get('by', 'control')} (playground as {row.user_id})"
    return row.user_id


class Responder:
    def __init__(
        self,
        settings: Settings,
        conversations: ConversationStore,
        usage: UsageStore,
        policy: LivePolicy,
        templates: Templates,
        model: ModelClient,
        bus: EventBus,
        rich: RichMedia,
        history_reply: Callable[[str], str | None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings  # replaced on reload
        self.templates = templates  # replaced on reload
        self.paused_notice: str | None = None  # set while an operator has paused the bot
        self._conversations = conversations
        self._usage = usage
        self._policy = policy
        self._model = model
        self._bus = bus
        self._clock = clock
        self._rich = rich
        self._admin = AdminActions(policy, usage, self.local_day, history_reply)

    def local_day(self, ts: float) -> str:
        return local_day(ts, self.settings.zone).isoformat()

    async def respond(self, row: InboxRow, emit: Emit | None = None) -> Outcome:
        """What to answer `row`. With `emit`, a streamed answer's finished parts are handed out on the way;
        the returned Outcome's text is then only what is left to send."""
        s, user = self.settings, row.user_id
        state = await self._conversations.user_state(user)
        session = current_session(
            state.mode, state.last_active_at, row.received_at, timeout=s.session_timeout, default=s.default_mode
        )
        turn = _Turn(row, session, None if session.expired else state.mode, emit)
        if not self._policy.lists.may_chat(user):
            return turn.reply(s.deny_reply)
        if self.paused_notice is not None and not self._policy.lists.is_admin(user):
            return turn.reply(self.paused_notice)
        if row.msg_type == "voice":
            return await self._voice(turn)
        if row.msg_type == "image":
            return await self._picture(turn)
        if row.msg_type != "text":
            return turn.reply(replies.unsupported_message(row.msg_type))
        return await self._text(turn, row.content)

    async def _text(self, turn: _Turn, text: str) -> Outcome:
        s, user = self.settings, turn.row.user_id
        match parse_command(text):
            case ShowHelp():
                return turn.reply(s.help)
            case SwitchMode(mode):
                return turn.reply(replies.mode_switched(mode, s.default_mode, s.session_timeout), mode=mode)
            case ResetConversation():
                return Outcome(replies.conversation_reset(s.default_mode), None, clear_context=True)
            case ShowTemplates():
                return turn.reply(self.templates.listing())
            case ShowUsage():
                return turn.reply(await self._usage_report(user, turn.row.received_at))
            case GenerateImage(prompt):
                return await self._draw(turn, prompt)
            case Ask(question):
                return await self._question(turn, question)
            case admin_command:
                if not self._policy.lists.is_admin(user):
                    return turn.reply(replies.admins_only())
                return turn.reply(await self._admin.run(admin_command, _actor(turn.row), self._clock()))

    async def _gate(self, turn: _Turn, text: str) -> Outcome | str:
        """Refuse `text` for its length, a sensitive word or the quota (an Outcome); else the quota day."""
        s, user = self.settings, turn.row.user_id
        if len(text) > s.max_question_len:
            return turn.reply(replies.question_too_long(len(text), s.max_question_len))
        if found := self._policy.words.find(text):
            return turn.reply(replies.sensitive_question(found))
        day = self.local_day(turn.row.received_at)
        quota = check_quota(self._policy.lists, user, await self._usage.used(user, day), s.max_request)
        if not quota.allowed:
            resets = next_midnight(turn.row.received_at, s.zone)
            return turn.reply(replies.quota_exhausted(quota.limit, resets, s.timezone))
        return day

    async def _voice(self, turn: _Turn) -> Outcome:
        """Hear a voice message, show the user what was heard, then treat it like typed text."""
        payload = turn.row.payload
        heard = str(payload.get("recognition") or "").strip()
        if not heard:
            if not self._model.speech_available:
                return turn.reply(replies.voice_unavailable())
            try:
                heard = await self._rich.hear(str(payload.get("media_id", "")))
            except (MediaError, ModelError, WeComAPIError) as exc:
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

        streamed = dataclasses.replace(turn, emit=emit_after_note if emit is not None else None)
        outcome = await self._text(streamed, heard)
        return dataclasses.replace(outcome, text=f"{note.pop()}\n\n{outcome.text}".strip()) if note else outcome

    async def _picture(self, turn: _Turn) -> Outcome:
        """Keep a picture for the user's next question (read by the vision model)."""
        if not self._model.vision_available:
            return turn.reply(replies.vision_unavailable())
        row = turn.row
        try:
            path = await self._rich.fetch_picture(str(row.payload.get("media_id", "")), row.id)
        except (MediaError, WeComAPIError) as exc:
            log.warning("picture: message %d of %s not fetched: %s", row.id, row.user_id, exc)
            return turn.reply(replies.picture_failed())
        await self._conversations.set_pending_image(row.user_id, str(path), row.received_at)
        return turn.reply(replies.picture_received())

    async def _draw(self, turn: _Turn, prompt: str) -> Outcome:
        """#图片: generate, store and send an image; counts against the quota."""
        if not prompt:
            return turn.reply(replies.image_usage())
        if not self._model.images_available:
            return turn.reply(replies.images_unavailable())
        gate = await self._gate(turn, prompt)
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
            asked_at=asked_at, answered_at=answered_at, model=self.settings.image_model,
            system_prompt=image.revised_prompt,
        )  # fmt: skip
        self._bus.publish(
            "answer.finished", user=row.user_id, inbox_id=row.id, latency=round(answered_at - asked_at, 3),
            prompt_tokens=0, completion_tokens=0,
        )  # fmt: skip
        return Outcome("", turn.chosen, turn.session.expired, exchange, gate, image_path=str(path))

    async def _question(self, turn: _Turn, question: str) -> Outcome:
        s, user = self.settings, turn.row.user_id
        system: str | None = None
        prompt = question
        request = match_template(question, self.templates)
        if request is not None:
            if not request.text:
                return turn.reply(self.templates.usage(request.template))
            prompt, system = request.template.user_text(request.text), request.template.system
        gate = await self._gate(turn, question)
        if isinstance(gate, Outcome):
            return gate
        history: list[tuple[str, str]] = []
        if turn.session.mode == "串聊" and not turn.session.expired:
            history = await self._conversations.context(user)
            if system is None:
                system = await self._conversations.context_system_prompt(user)
        image = None
        if self._model.vision_available:
            image = await self._conversations.pending_image(user, turn.row.received_at - s.session_timeout)
        return await self._ask(turn, prompt, system, history, gate, image)

    async def _ask(
        self,
        turn: _Turn,
        prompt: str,
        system: str | None,
        history: list[tuple[str, str]],
        day: str,
        image: str | None = None,
    ) -> Outcome:
        s, row, mode = self.settings, turn.row, turn.session.mode
        clear = turn.session.expired
        asked_at = self._clock()
        self._bus.publish("answer.started", user=row.user_id, inbox_id=row.id, mode=mode)
        messages = build_messages(prompt, history, budget=s.max_text, system=system)
        completion: Completion | None = None
        error: str | None = None
        partial: str | None = None
        try:
            try:
                completion, text = await self._complete(messages, turn.emit, image)
            except ContextTooLongError:
                if not history_in(messages):
                    raise
                # Trim and retry once: without the history, and start the conversation afresh from here.
                log.info("model: context too long for %s, retrying without history", row.user_id)
                clear = True
                retry = build_messages(prompt, [], budget=s.max_text, system=system)
                completion, text = await self._complete(retry, turn.emit, image)
        except ContextTooLongError as exc:
            error, text = f"context_too_long: {exc}", replies.context_too_long()
        except _CutOff as cut:
            error, partial = str(cut.error), cut.partial
            text = f"{cut.pending}\n\n{replies.answer_cut_off()}".strip()
            log.warning("model: answer to %s cut off mid-stream: %s", row.user_id, cut.error)
        except (ModelError, MediaError) as exc:
            error, text = str(exc), replies.model_unavailable()
            log.warning("model: no answer for %s: %s", row.user_id, exc)
        answered_at = self._clock()
        if completion is not None and image is not None:
            await self._conversations.set_pending_image(row.user_id, None, answered_at)  # asked about: done
        if completion is not None:
            if not text and not completion.text.strip():
                text = "（模型没有给出内容）"
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
        )
        return Outcome(text, turn.chosen, clear, exchange, day if completion is not None else None)

    async def _complete(
        self, messages: list[dict[str, str]], emit: Emit | None, image: str | None = None
    ) -> tuple[Completion, str]:
        """The model's answer and the part of it still to send, censored. Streams when it can: the text is
        censored as it arrives (`StreamCensor`: a word split across two pieces is caught too), then the splitter
        cuts the censored text into parts, each emitted as soon as it is released — so a cut never separates a
        word from its censoring and every part fits the limit as sent. With `image`, the vision model answers.
        The words are read from the live policy at every step: an admin may change them meanwhile."""
        s = self.settings
        if image is not None:
            data, content_type = await read_image(image)
            completion = await self._model.describe(messages, data, content_type, max_tokens=s.max_answer_len)
            return completion, self._policy.words.censor(completion.text.strip())
        if emit is None or not s.stream_answers:
            completion = await self._model.complete(messages, max_tokens=s.max_answer_len)
            return completion, self._policy.words.censor(completion.text.strip())
        splitter = ProgressiveSplitter(WECOM_TEXT_LIMIT)
        censor = StreamCensor()
        received: list[str] = []
        try:
            # first_token_timeout bounds the wait for the answer to start and model_timeout each later wait for
            # more text (both in the model client); this bounds the whole answer (a slot is held meanwhile).
            async with (
                asyncio.timeout(STREAM_LIMIT),
                self._model.stream(messages, max_tokens=s.max_answer_len) as stream,
            ):
                async for delta in stream:
                    received.append(delta)
                    for part in splitter.feed(censor.feed(delta, self._policy.words)):
                        await emit(part)
                completion = stream.completion
        except TimeoutError:
            exc = ModelUnavailableError(f"model endpoint {self._model.endpoint} streamed for over {STREAM_LIMIT:g} s")
            if splitter.parts_sent == 0:
                raise exc from None
            raise _CutOff(exc, "".join(received), self._rest(splitter, censor)) from None
        except ModelError as exc:
            if splitter.parts_sent == 0:
                raise
            raise _CutOff(exc, "".join(received), self._rest(splitter, censor)) from None
        return completion, self._rest(splitter, censor).strip()

    def _rest(self, splitter: ProgressiveSplitter, censor: StreamCensor) -> str:
        """What a stream left unsent, censored: the splitter's pending text and the censor's held-back tail."""
        return splitter.pending + censor.finish(self._policy.words)

    async def _usage_report(self, user: str, now: float) -> str:
        zone, lists = self.settings.zone, self._policy.lists
        today, month = day_start(now, zone), month_start(now, zone)
        mine_today, mine_month = await self._usage.usage(user, today), await self._usage.usage(user, month)
        used = await self._usage.used(user, self.local_day(now))
        quota = replies.quota_line(used, self.settings.max_request, lists.unlimited(user))
        everyone = None
        if lists.is_admin(user):
            (d, du), (m, mu) = await self._usage.totals(today), await self._usage.totals(month)
            top = [(u.user_id, u.questions, u.tokens) for u in await self._usage.top_users(month)]
            everyone = ((d.questions, d.tokens, du), (m.questions, m.tokens, mu), top)
        return replies.usage_report(
            (mine_today.questions, mine_today.tokens), (mine_month.questions, mine_month.tokens), quota, everyone
        )
