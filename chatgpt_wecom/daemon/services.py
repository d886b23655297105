"""Every long-lived object of the daemon, built and closed in one place, in dependency order."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from chatgpt_wecom import __version__, protocol
from chatgpt_wecom.config import ConfigError, Settings, load_settings
from chatgpt_wecom.daemon.answer.router import Collaborators, Responder
from chatgpt_wecom.daemon.channels.base import Channel, Inbound, MediaUnavailable
from chatgpt_wecom.daemon.channels.registry import configured_channels
from chatgpt_wecom.daemon.channels.retry import RetryPolicy
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.policy import day_start, month_start
from chatgpt_wecom.daemon.chat.templates import TemplateError, Templates
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.media.files import RichMedia
from chatgpt_wecom.daemon.model.client import ModelClient
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer, DeliveryPolicy
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.pipeline.intake import Intake
from chatgpt_wecom.daemon.pipeline.pacing import Rate
from chatgpt_wecom.daemon.pipeline.worker import Worker
from chatgpt_wecom.daemon.store.audit import AuditLog, audit
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.history import HistoryStore
from chatgpt_wecom.daemon.store.inbox import InboxStore, InboxWriter
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.policy import PolicyStore
from chatgpt_wecom.daemon.store.private import secure_data_dir
from chatgpt_wecom.daemon.store.state import DaemonState
from chatgpt_wecom.daemon.store.usage import UsageStore
from chatgpt_wecom.daemon.web.links import LinkSigner, history_url

log = logging.getLogger(__name__)

# Keys a reload can change in place; any other change needs a restart.
RELOADABLE = frozenset({
    "log_level", "session_timeout", "max_question_len", "max_answer_len", "max_text", "default_mode",
    "max_request", "allow_users", "deny_users", "vip_users", "admin_users", "sensitive_words", "help",
    "deny_reply", "pause_notice", "reply_format", "timezone", "service_url", "stream_answers",
    "history_link_hours", "max_answer_parts",
})  # fmt: skip


CONFIG_ERROR_REPEAT = 300.0  # seconds: a configuration error already reported is reported again at most this often


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs that are not configuration keys: defaults for production, changed by tests and benchmarks."""

    concurrency: int = 32
    shutdown_grace: float = 20.0
    http_retry: RetryPolicy = field(default_factory=RetryPolicy)  # the channels' API clients
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    member_rates: tuple[Rate, ...] | None = None  # per recipient, instead of each channel's own (None: the channel's)
    clock: Callable[[], float] = time.time  # "now" for received messages, quotas and usage


def templates_path(config_path: Path | None) -> Path | None:
    """Operators' prompt templates: prompts.yml beside config.yml."""
    return config_path.resolve().parent / "prompts.yml" if config_path is not None else None


class Services:
    """Open with `async with Services(settings) as services:` (or `await open()` / `await close()`)."""

    def __init__(
        self,
        settings: Settings,
        tuning: Tuning | None = None,
        config_path: Path | None = None,
        extra_channels: Sequence[Channel] = (),
    ) -> None:
        self.settings = settings
        self.tuning = tuning or Tuning()
        self.config_path = config_path
        self.ready = False
        self.stopping = asyncio.Event()  # set when shutdown begins (event streams end on it)
        self.started_at = time.time()
        self._pause_override: str | None = None
        self._config_errors: dict[str, tuple[float, int]] = {}  # what -> (when reported, times since)
        self.bus = EventBus()
        self._extra_channels = extra_channels  # beside the configured ones (an embedder's own transport, tests)
        self.templates = Templates.load(templates_path(config_path))

    async def open(self) -> Services:
        s, t = self.settings, self.tuning
        secure_data_dir(s.data_dir, s.database_path)  # 0700 folder, 0600 files, whatever the umask
        self.db = await Database.open(s.database_path)
        self.inbox = InboxStore(self.db, await InboxWriter(s.database_path).open())
        self.outbox = OutboxStore(self.db)
        self.conversations = ConversationStore(self.db)
        self.usage = UsageStore(self.db)
        self.policy = LivePolicy(PolicyStore(self.db), self.bus)
        applied = await self.policy.apply_config(s)
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=t.http_retry.timeout))
        configured = configured_channels(s, self.http, t.http_retry, self._misconfigured)
        self.channels = {c.name: c for c in [*configured, *self._extra_channels]}
        self.model = ModelClient.from_settings(s)
        self.links = LinkSigner.from_data_dir(s.data_dir, clock=t.clock)
        self.rich = RichMedia(s.data_dir, self.model, self._fetch_media)
        self.responder = Responder(s, self.templates, Collaborators(
            self.conversations, self.usage, self.policy, self.model, self.rich, self.bus, self.history_reply, t.clock,
        ))  # fmt: skip
        self.deliverer = Deliverer(self.outbox, self.channels, self.bus, t.delivery, t.member_rates)
        self.worker = Worker(
            self.db, self.inbox, self.outbox, self.responder, self.deliverer, self.bus,
            reply_format=s.reply_format, channels=self.channels, max_parts=s.max_answer_parts,
            answer_link=self.history_link, link_hours=s.history_link_hours,
        )  # fmt: skip
        self.dispatcher = Dispatcher(self.worker.process, self.bus, t.concurrency)
        self.intake = Intake(self.inbox, self.bus, self.dispatcher, t.clock)
        self.history = HistoryStore(self.db)
        self.audit = AuditLog(self.db)
        self.state = DaemonState(self.db)
        paused = await self.state.get("paused")
        if paused is not None:
            self._pause_override = paused.get("notice")
            self.responder.paused_notice = self._pause_override or s.pause_notice
            log.warning("the bot is paused (by an operator before the last stop); `ctl resume` resumes it")
        return self

    async def requeue_unfinished(self) -> int:
        """Queue every message accepted before a stop and not finished; returns how many."""
        await self.deliverer.resume()  # sends made before the stop still count against each member's pace
        rows = await self.inbox.open_rows()
        self.intake.resume(rows)
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
        self.worker.max_parts = self.settings.max_answer_parts
        self.worker.link_hours = self.settings.history_link_hours
        logging.getLogger().setLevel(self.settings.log_level.upper())
        applied = await self.policy.apply_config(self.settings)
        log.info("reload: applied %s", ", ".join(sorted(live)) or "no changed keys")
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self.bus.publish("config.reloaded", changed=sorted(live), restart_needed=needs_restart)
        return sorted(live), needs_restart

    def history_link(self, user: str) -> str | None:
        """A signed, expiring link to `user`'s history page; None without service_url."""
        s = self.settings
        if not s.service_url:
            return None
        return history_url(s.service_url, self.links.token(user, ttl=s.history_link_hours * 3600))

    def history_reply(self, user: str) -> str | None:
        """The #查对话 reply: a signed, expiring link to `user`'s history page; None without service_url."""
        url = self.history_link(user)
        return None if url is None else replies.history_link(user, url, self.settings.history_link_hours)

    # --- operator actions (the control API calls these) ----------------------------------------------
    async def pause(self, notice: str | None, actor: str) -> None:
        """Everyone but admins gets the pause notice instead of an answer, until resume(); survives restarts."""
        override = notice or None
        shown = override or self.settings.pause_notice
        async with self.db.tx() as conn:
            await DaemonState.set(conn, "paused", {"notice": override, "by": actor})
            await audit(conn, actor, "pause", "", None, {"notice": shown})
        self._pause_override, self.responder.paused_notice = override, shown  # only once it is stored
        log.warning("paused by %s", actor)
        self.bus.publish("bot.paused", actor=actor, notice=self.responder.paused_notice)

    async def resume(self, actor: str) -> None:
        async with self.db.tx() as conn:
            await DaemonState.set(conn, "paused", None)
            await audit(conn, actor, "resume", "", None, None)
        self.responder.paused_notice = None
        log.warning("resumed by %s", actor)
        self.bus.publish("bot.resumed", actor=actor)

    async def playground(self, user: str, text: str, actor: str, channel: str | None = None) -> int:
        """Put `text` into the pipeline as if `user` had sent it on `channel` (default: the first configured);
        the answer goes to that user there."""
        name = channel or next(iter(self.channels))
        if name not in self.channels:
            raise ValueError(f"no channel {name!r} is configured (configured: {', '.join(self.channels)})")
        message = Inbound(
            dedupe_key=f"play:{uuid.uuid4().hex}",
            user_id=user,
            msg_type="text",
            content=text,
            payload={"source": "playground", "by": actor},
        )
        inbox_id = await self.intake(self.channels[name], message)
        assert inbox_id is not None  # a fresh uuid is never a duplicate
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
        app = self.channels["wecom"].detail() if "wecom" in self.channels else {}
        return protocol.Status(
            version=__version__,
            started_at=self.started_at,
            uptime=time.time() - self.started_at,
            paused=self.responder.paused_notice is not None,
            pause_notice=self.responder.paused_notice or s.pause_notice,
            model=self.model.model,
            model_endpoint=self.model.endpoint,
            wecom_api_base=app.get("api_base", ""),
            corp_id=app.get("corp_id", ""),
            agent_id=app.get("agent_id", 0),
            token=protocol.TokenState(**app.get("token", {"has_token": False})),
            channels=self.channel_states(),
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

    def channel_states(self) -> list[protocol.ChannelStatus]:
        return [
            protocol.ChannelStatus(
                name=c.name, namespace=c.namespace, up=c.state.up, since=c.state.since,
                last_error=c.state.last_error, reconnects=c.state.reconnects,
                detail={k: v for k, v in c.detail().items() if k != "token"},
            )
            for c in self.channels.values()
        ]  # fmt: skip

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

    def _misconfigured(self, what: str, message: str, hint: str) -> None:
        """Report a channel's configuration error (`what`: "wecom 60020") once, then again every few minutes with
        how often it recurred — every part of every answer meets the same wrong setting until the operator fixes
        it."""
        now = time.monotonic()
        reported, since = self._config_errors.get(what, (None, 0))
        if reported is not None and now - reported < CONFIG_ERROR_REPEAT:
            self._config_errors[what] = (reported, since + 1)
            return
        again = f" (it recurred {since} more times in the last {now - reported:.0f} s)" if reported and since else ""
        log.error("%s — %s%s", message, hint, again)
        source, _, code = what.partition(" ")
        self.bus.publish("error", source=source, errcode=int(code) if code.lstrip("-").isdigit() else None,
                         error=message + again, hint=hint)  # fmt: skip
        self._config_errors[what] = (now, 0)

    async def _fetch_media(self, ref: str) -> tuple[bytes, str]:
        """Media a user sent, from the WeCom app (the one channel with media today)."""
        if "wecom" not in self.channels:
            raise MediaUnavailable("no channel to fetch media from")
        return await self.channels["wecom"].fetch_media(ref)

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
        for channel in self.channels.values():
            await channel.stop()
        await self.http.close()
        await self.db.close()

    async def __aenter__(self) -> Services:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
