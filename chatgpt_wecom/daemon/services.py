"""Every long-lived object of the daemon, built and closed in one place, in dependency order."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from chatgpt_wecom.config import ConfigError, Settings, load_settings
from chatgpt_wecom.daemon.chat.templates import TemplateError, Templates
from chatgpt_wecom.daemon.control.bus import EventBus
from chatgpt_wecom.daemon.llm import ModelClient
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer, DeliveryPolicy
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.pipeline.live_policy import LivePolicy
from chatgpt_wecom.daemon.pipeline.responder import Responder
from chatgpt_wecom.daemon.pipeline.worker import Worker
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.inbox import InboxStore
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.policy import PolicyStore
from chatgpt_wecom.daemon.store.usage import UsageStore
from chatgpt_wecom.daemon.wecom.api import RetryPolicy, WeComClient, WeComConfigError
from chatgpt_wecom.daemon.wecom.crypto import WeComCrypto

log = logging.getLogger(__name__)

# Keys a reload can change in place; any other change needs a restart.
RELOADABLE = frozenset({
    "log_level", "session_timeout", "max_question_len", "max_answer_len", "max_text", "default_mode",
    "max_request", "allow_users", "deny_users", "vip_users", "admin_users", "sensitive_words", "help",
    "deny_reply", "reply_format", "timezone", "service_url",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs that are not configuration keys: defaults for production, changed by tests and benchmarks."""

    concurrency: int = 32
    shutdown_grace: float = 20.0
    wecom_retry: RetryPolicy = field(default_factory=RetryPolicy)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    clock: Callable[[], float] = time.time  # "now" for received messages, quotas and usage


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
        self.started_at = time.time()
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
        self.inbox = InboxStore(self.db)
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
        self.responder = Responder(
            s, self.conversations, self.usage, self.policy, self.templates, self.model, self.bus, t.clock
        )
        self.deliverer = Deliverer(self.outbox, self.wecom, self.bus, t.delivery)
        self.worker = Worker(self.db, self.inbox, self.responder, self.deliverer, self.bus, reply_format=s.reply_format)
        self.dispatcher = Dispatcher(self.worker.process, self.bus, t.concurrency)
        return self

    async def resume(self) -> int:
        """Queue every message accepted before a stop and not finished; returns how many."""
        rows = await self.inbox.open_rows()
        for row in rows:
            self.dispatcher.submit(row.user_id, row.id)
        if rows:
            log.info("pipeline: resuming %d unfinished message(s)", len(rows))
        return len(rows)

    async def reload(self) -> list[str]:
        """Re-read the config file (SIGHUP): apply what can change live; returns the keys that changed.

        A file that no longer validates is reported and ignored: the daemon keeps running as it was.
        """
        try:
            new = load_settings(self.config_path, require_file=self.config_path is not None)
            templates = Templates.load(templates_path(self.config_path))
        except (ConfigError, TemplateError) as exc:
            log.error("reload: config not applied, keeping the running one: %s", str(exc).replace("\n", "; "))
            self.bus.publish("error", source="reload", error=str(exc))
            return []
        old = self.settings
        changed = [k for k in Settings.model_fields if getattr(new, k) != getattr(old, k)]
        needs_restart = [k for k in changed if k not in RELOADABLE]
        if needs_restart:
            log.warning("reload: %s changed; restart the daemon to apply", ", ".join(needs_restart))
        live = {k: getattr(new, k) for k in changed if k in RELOADABLE}
        self.settings = old.model_copy(update=live)
        self.responder.settings = self.settings
        self.responder.templates = self.templates = templates
        self.worker.reply_format = self.settings.reply_format
        logging.getLogger().setLevel(self.settings.log_level.upper())
        applied = await self.policy.apply_config(self.settings)
        log.info("reload: applied %s", ", ".join(sorted(live)) or "no changed keys")
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self.bus.publish("config.reloaded", changed=sorted(live), restart_needed=needs_restart)
        return sorted(live)

    def _wecom_config_error(self, exc: WeComConfigError) -> None:
        log.error("wecom: %s — %s", exc, exc.hint)
        self.bus.publish("error", source="wecom", errcode=exc.errcode, error=str(exc), hint=exc.hint)

    async def close(self) -> None:
        """Drain the pipeline (within the grace period), then close clients and the database."""
        self.ready = False
        self.deliverer.stop()
        await self.dispatcher.stop(self.tuning.shutdown_grace)
        await self.inbox.flush()
        await self.model.close()
        await self.http.close()
        await self.db.close()

    async def __aenter__(self) -> Services:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
