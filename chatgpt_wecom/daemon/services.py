"""Every long-lived object of the daemon, built and closed in one place, in dependency order."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from chatgpt_wecom import __version__, protocol
from chatgpt_wecom.config import ConfigError, Settings, load_settings, redact_userinfo
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.policy import day_start, month_start
from chatgpt_wecom.daemon.chat.templates import TemplateError, Templates
from chatgpt_wecom.daemon.control.bus import EventBus, preview
from chatgpt_wecom.daemon.listener import ListenerLimits
from chatgpt_wecom.daemon.llm import ModelClient
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer, DeliveryPolicy
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.pipeline.live_policy import LivePolicy
from chatgpt_wecom.daemon.pipeline.responder import Responder
from chatgpt_wecom.daemon.pipeline.rich import RichMedia
from chatgpt_wecom.daemon.pipeline.worker import Worker
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.history import HistoryStore
from chatgpt_wecom.daemon.store.inbox import InboxStore, InboxWriter, NewMessage
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.policy import PolicyStore, audit
from chatgpt_wecom.daemon.store.usage import UsageStore
from chatgpt_wecom.daemon.web.links import LinkSigner, history_url
from chatgpt_wecom.daemon.wecom.api import RetryPolicy, WeComClient, WeComConfigError
from chatgpt_wecom.daemon.wecom.crypto import WeComCrypto

log = logging.getLogger(__name__)

# Keys a reload can change in place; any other change needs a restart.
RELOADABLE = frozenset({
    "log_level", "session_timeout", "max_question_len", "max_answer_len", "max_text", "default_mode",
    "max_request", "allow_users", "deny_users", "vip_users", "admin_users", "sensitive_words", "help",
    "deny_reply", "pause_notice", "reply_format", "timezone", "service_url", "stream_answers",
    "history_link_hours",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs that are not configuration keys: defaults for production, changed by tests and benchmarks."""

    concurrency: int = 32
    shutdown_grace: float = 20.0
    wecom_retry: RetryPolicy = field(default_factory=RetryPolicy)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    clock: Callable[[], float] = time.time  # "now" for received messages, quotas and usage
    listener: ListenerLimits = field(default_factory=ListenerLimits)  # the public port's timeouts and cap


def templates_path(config_path: Path | None) -> Path | None:
    """Operators' prompt templates: prompts.yml beside config.yml."""
    return config_path.resolve().parent / "prompts.yml" if config_path is not None else None


class Services:
    """Open with `async with Services(settings) as services:` (or `await open()` / `await close()`)."""

    def __init__(self, settings: Settings, tuning: Tuning | None = None, config_path: Path | None = None) -> None:
        self.settings = settings
        self.tuning = tuning or Tuning()
        self.config_path = config_path
        self.ready = False
        self.stopping = asyncio.Event()  # set when shutdown begins (event streams end on it)
        self.started_at = time.time()
        self._pause_override: str | None = None
        self.bus = EventBus()
        self.crypto = WeComCrypto(
            settings.receive_msg_token.get_secret_value(),
            settings.receive_msg_key.get_secret_value(),
            settings.corp_id,
        )
        self.templates = Templates.load(templates_path(config_path))

    async def open(self) -> Services:
        s, t = self.settings, self.tuning
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = await Database.open(s.database_path)
        self.inbox = InboxStore(self.db, await InboxWriter(s.database_path).open())
        self.outbox = OutboxStore(self.db)
        self.conversations = ConversationStore(self.db)
        self.usage = UsageStore(self.db)
        self.policy = LivePolicy(PolicyStore(self.db), self.bus)
        applied = await self.policy.apply_config(s)
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=t.wecom_retry.timeout))
        self.wecom = WeComClient(
            self.http,
            api_base=s.wecom_api_base,
            corp_id=s.corp_id,
            agent_id=s.agent_id,
            secret=s.agent_secret.get_secret_value(),
            retry=t.wecom_retry,
            on_config_error=self._wecom_config_error,
        )
        self.model = ModelClient.from_settings(s)
        self.links = LinkSigner.from_data_dir(s.data_dir, clock=t.clock)
        self.rich = RichMedia(s.data_dir, self.model, self.wecom)
        self.responder = Responder(
            s, self.conversations, self.usage, self.policy, self.templates, self.model, self.bus,
            self.rich, self.history_reply, t.clock,
        )  # fmt: skip
        self.deliverer = Deliverer(self.outbox, self.wecom, self.bus, t.delivery)
        self.worker = Worker(
            self.db, self.inbox, self.outbox, self.responder, self.deliverer, self.bus, reply_format=s.reply_format
        )
        self.dispatcher = Dispatcher(self.worker.process, self.bus, t.concurrency)
        self.history = HistoryStore(self.db)
        paused = await self.history.get_state("paused")
        if paused is not None:
            self._pause_override = paused.get("notice")
            self.responder.paused_notice = self._pause_override or s.pause_notice
            log.warning("the bot is paused (by an operator before the last stop); `ctl resume` resumes it")
        return self

    async def requeue_unfinished(self) -> int:
        """Queue every message accepted before a stop and not finished; returns how many."""
        rows = await self.inbox.open_rows()
        for row in rows:
            self.dispatcher.submit(row.user_id, row.id)
        if rows:
            log.info("pipeline: resuming %d unfinished message(s)", len(rows))
        return len(rows)

    async def reload(self) -> tuple[list[str], list[str]] | None:
        """Re-read the config file (SIGHUP): apply what can change live.

        Returns (keys applied, changed keys that need a restart), or None when the file no longer validates —
        then it is reported and ignored, and the daemon keeps running as it was.
        """
        if self.config_path is None:
            log.info("reload: no config file to re-read (the environment of a running process does not change)")
            return [], []
        try:
            new = load_settings(self.config_path, require_file=True)
            templates = Templates.load(templates_path(self.config_path))
        except (ConfigError, TemplateError) as exc:
            log.error("reload: config not applied, keeping the running one: %s", str(exc).replace("\n", "; "))
            self.bus.publish("error", source="reload", error=str(exc))
            return None
        old = self.settings
        changed = [k for k in Settings.model_fields if getattr(new, k) != getattr(old, k)]
        needs_restart = [k for k in changed if k not in RELOADABLE]
        if needs_restart:
            log.warning("reload: %s changed; restart the daemon to apply", ", ".join(needs_restart))
        live = {k: getattr(new, k) for k in changed if k in RELOADABLE}
        self.settings = old.model_copy(update=live)
        self.responder.settings = self.settings
        self.responder.templates = self.templates = templates
        if self.responder.paused_notice is not None:
            self.responder.paused_notice = self._pause_override or self.settings.pause_notice
        self.worker.reply_format = self.settings.reply_format
        logging.getLogger().setLevel(self.settings.log_level.upper())
        applied = await self.policy.apply_config(self.settings)
        log.info("reload: applied %s", ", ".join(sorted(live)) or "no changed keys")
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self.bus.publish("config.reloaded", changed=sorted(live), restart_needed=needs_restart)
        return sorted(live), needs_restart

    def history_reply(self, user: str) -> str | None:
        """The #查对话 reply: a signed, expiring link to `user`'s history page; None without service_url."""
        s = self.settings
        if not s.service_url:
            return None
        url = history_url(s.service_url, self.links.token(user, ttl=s.history_link_hours * 3600))
        return replies.history_link(user, url, s.history_link_hours)

    # --- operator actions (the control API calls these) ----------------------------------------------
    async def pause(self, notice: str | None, actor: str) -> None:
        """Everyone but admins gets the pause notice instead of an answer, until resume(); survives restarts."""
        override = notice or None
        shown = override or self.settings.pause_notice
        async with self.db.tx() as conn:
            await HistoryStore.set_state(conn, "paused", {"notice": override, "by": actor})
            await audit(conn, actor, "pause", "", None, {"notice": shown})
        self._pause_override, self.responder.paused_notice = override, shown  # only once it is stored
        log.warning("paused by %s", actor)
        self.bus.publish("bot.paused", actor=actor, notice=self.responder.paused_notice)

    async def resume(self, actor: str) -> None:
        async with self.db.tx() as conn:
            await HistoryStore.set_state(conn, "paused", None)
            await audit(conn, actor, "resume", "", None, None)
        self.responder.paused_notice = None
        log.warning("resumed by %s", actor)
        self.bus.publish("bot.resumed", actor=actor)

    async def playground(self, user: str, text: str, actor: str) -> int:
        """Put `text` into the pipeline as if `user` had sent it from WeCom; the answer goes to that user."""
        message = NewMessage(
            dedupe_key=f"play:{uuid.uuid4().hex}",
            user_id=user,
            msg_type="text",
            content=text,
            received_at=self.tuning.clock(),
            payload={"source": "playground", "by": actor},
        )
        inbox_id = await self.inbox.add(message)
        assert inbox_id is not None  # a fresh uuid is never a duplicate
        self.bus.publish("message.received", user=user, inbox_id=inbox_id, msg_type="text",
                         text=preview(text), source="playground")  # fmt: skip
        self.dispatcher.submit(user, inbox_id)
        return inbox_id

    async def reset_quota(self, user: str | None, actor: str) -> int:
        cleared = await self.usage.reset(user, self.responder.local_day(self.tuning.clock()), actor)
        self.bus.publish("policy.changed", actor=actor, change="quota_reset", user=user or "all")
        return cleared

    async def clear_context(self, user: str, actor: str) -> None:
        async with self.db.tx() as conn:
            await ConversationStore.clear_context(conn, user)
            await audit(conn, actor, "clear_context", user, None, None)
        self.bus.publish("policy.changed", actor=actor, change="context_cleared", user=user)

    async def status(self) -> protocol.Status:
        s, now = self.settings, self.tuning.clock()
        users, questions, messages = await self.history.today(day_start(now, s.zone))
        token = self.wecom.token_state()
        return protocol.Status(
            version=__version__,
            started_at=self.started_at,
            uptime=time.time() - self.started_at,
            paused=self.responder.paused_notice is not None,
            pause_notice=self.responder.paused_notice or s.pause_notice,
            model=self.model.model,
            model_endpoint=self.model.endpoint,
            wecom_api_base=redact_userinfo(s.wecom_api_base),
            corp_id=s.corp_id,
            agent_id=s.agent_id,
            token=protocol.TokenState(**dataclasses.asdict(token)),
            queue_depth=self.dispatcher.depth,
            open_messages=await self.inbox.count_open(),
            users_today=users,
            questions_today=questions,
            messages_today=messages,
            secrets=s.secrets_set(),
            last_errors=[protocol.Event(seq=e.seq, kind=e.kind, at=e.at, data=e.data) for e in self.bus.recent_errors],
            config_path=str(self.config_path) if self.config_path else None,
            data_dir=str(s.data_dir),
            control_socket=str(s.socket_path),
        )

    async def quotas(self) -> protocol.Quotas:
        s, now = self.settings, self.tuning.clock()
        day = self.responder.local_day(now)
        lists = self.policy.lists
        rows = await self.history.user_activity(day, month_start(now, s.zone))
        users = [
            protocol.UserQuota(user_id=u, used_today=used, questions_month=q, tokens_month=t,
                               unlimited=lists.unlimited(u) or s.max_request <= 0)
            for u, used, q, t in rows
        ]  # fmt: skip
        return protocol.Quotas(day=day, limit=s.max_request, timezone=s.timezone, users=users)

    def _wecom_config_error(self, exc: WeComConfigError) -> None:
        log.error("wecom: %s — %s", exc, exc.hint)
        self.bus.publish("error", source="wecom", errcode=exc.errcode, error=str(exc), hint=exc.hint)

    async def drain(self) -> None:
        """Start no new message; let those in progress finish within the grace period (the rest resume later)."""
        self.ready = False
        self.stopping.set()
        self.deliverer.stop()
        await self.dispatcher.stop(self.tuning.shutdown_grace)

    async def close(self) -> None:
        """Drain (if not yet), then close clients and the database."""
        await self.drain()
        await self.inbox.close()
        await self.model.close()
        await self.http.close()
        await self.db.close()

    async def __aenter__(self) -> Services:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
