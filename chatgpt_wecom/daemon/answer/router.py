"""The door every message goes through: decides what kind of answer it gets and hands it to the part that gives it.

Order of decisions: access lists → paused (admins pass) → message type (voice, picture, other) → command (help,
modes, templates, usage, #图片, admin commands) → a question for the model. A voice message comes back here as the
text that was heard. The gate (length, words, quota) is passed by questions and drawings, in their own modules.
The result is an `Outcome` that the worker stores in one transaction (an admin command's change is the exception:
`admin.py` stores it as it runs).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from chatgpt_wecom.daemon.answer.admin import AdminActions, actor
from chatgpt_wecom.daemon.answer.conversation import Conversation
from chatgpt_wecom.daemon.answer.gate import Gate
from chatgpt_wecom.daemon.answer.media_turns import MediaTurns
from chatgpt_wecom.daemon.answer.turn import Emit, InPlace, Outcome, Turn
from chatgpt_wecom.daemon.answer.usage import usage_report
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
from chatgpt_wecom.daemon.chat.policy import chat_refusal, local_day
from chatgpt_wecom.daemon.chat.session import current_session
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.live_settings import LiveSettings
from chatgpt_wecom.daemon.media.files import RichMedia
from chatgpt_wecom.daemon.model.client import ModelClient
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.inbox import InboxRow
from chatgpt_wecom.daemon.store.usage import UsageStore


@dataclass(frozen=True, slots=True)
class Collaborators:
    """What answering reads and talks to, fixed for the daemon's life (settings and templates: `LiveSettings`)."""

    conversations: ConversationStore
    usage: UsageStore
    policy: LivePolicy
    model: ModelClient
    rich: RichMedia
    bus: EventBus
    history_reply: Callable[[str], str | None]  # #查对话: the reply with a signed link; None without service_url
    paused: Callable[[], str | None]  # the notice non-admins get while an operator has paused the bot, else None
    clock: Callable[[], float] = time.time


class Responder:
    def __init__(self, live: LiveSettings, parts: Collaborators) -> None:
        self._live = live  # the settings and templates in force (a reload replaces them there)
        self._paused = parts.paused
        self._conversations = parts.conversations
        self._usage = parts.usage
        self._policy = parts.policy
        self._model = parts.model
        self._clock = parts.clock
        gate = Gate(parts.policy, parts.usage, parts.bus)
        self._conversation = Conversation(parts.conversations, parts.policy, parts.model, gate, parts.bus, parts.clock)
        self._media = MediaTurns(parts.rich, parts.model, parts.policy, gate, parts.bus, parts.clock)
        self._admin = AdminActions(parts.policy, parts.usage, self.local_day, parts.history_reply)

    def local_day(self, ts: float) -> str:
        """The local day ("YYYY-MM-DD") of unix time `ts`: the day a quota counts against."""
        return local_day(ts, self._live.settings.zone).isoformat()

    async def respond(
        self, row: InboxRow, emit: Emit | None = None, part_limit: int = 2048, in_place: InPlace | None = None
    ) -> Outcome:
        """What to answer `row`. With `emit`, a streamed answer's finished parts (at most `part_limit` bytes, the
        channel's) are handed out on the way; the returned Outcome's text is then only what is left to send. With
        `in_place`, the channel shows the answer growing in one message (see `InPlace`)."""
        s, templates, user = self._live.settings, self._live.templates, row.user_id
        state = await self._conversations.user_state(row.key)
        session = current_session(
            state.mode, state.last_active_at, row.received_at, timeout=s.session_timeout, default=s.default_mode
        )
        turn = Turn(row, session, None if session.expired else state.mode, s, templates, emit, part_limit, in_place)
        if not self._policy.lists.may_chat(user, row.namespace):
            return turn.reply(s.deny_reply)
        title = str(row.payload.get("chat_title", ""))  # a group's name, where the channel gives it
        admin = self._policy.lists.is_admin(user, row.namespace)
        where = chat_refusal(s.chat_type, s.allow_groups, private=row.private, chat=row.chat, title=title, admin=admin)
        if where is not None:
            return turn.reply(replies.chat_refused(where))
        if (notice := self._paused()) is not None and not admin:
            return turn.reply(notice)
        if row.msg_type == "voice":
            return await self._media.voice(turn, self._text)
        if row.msg_type == "image":
            return await self._media.picture(turn)
        if row.msg_type != "text":
            return turn.reply(replies.unsupported_message(row.msg_type))
        return await self._text(turn, row.content)

    def _abilities(self, turn: Turn) -> replies.Abilities:
        s, row = turn.settings, turn.row
        return replies.Abilities(
            default_mode=s.default_mode, templates=len(turn.templates) > 0, images=self._model.images_available,
            voice=self._model.speech_available, pictures=self._model.vision_available,
            admin=self._policy.lists.is_admin(row.user_id, row.namespace), history_link=bool(s.service_url),
        )  # fmt: skip

    async def _text(self, turn: Turn, text: str) -> Outcome:
        s, user = turn.settings, turn.row.user_id
        match parse_command(text):
            case ShowHelp():
                return turn.reply(s.help or replies.default_help(self._abilities(turn)))
            case SwitchMode(mode):
                return turn.reply(replies.mode_switched(mode, s.default_mode, s.session_timeout), mode=mode)
            case ResetConversation():
                return Outcome(replies.conversation_reset(s.default_mode), None, clear_context=True)
            case ShowTemplates():
                return turn.reply(turn.templates.listing())
            case ShowUsage():
                report = await usage_report(self._usage, self._policy.lists, s, turn.row)
                return turn.reply(report)
            case GenerateImage(prompt):
                return await self._media.draw(turn, prompt)
            case Ask(question):
                return await self._conversation.question(turn, question)
            case admin_command:
                if not self._policy.lists.is_admin(user, turn.row.namespace):
                    return turn.reply(replies.admins_only())
                return turn.reply(await self._admin.run(admin_command, actor(turn.row), self._clock()))
