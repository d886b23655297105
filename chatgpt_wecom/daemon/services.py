"""Every long-lived object of the daemon, built and closed in one place, in dependency order."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from types import TracebackType

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.control.bus import EventBus
from chatgpt_wecom.daemon.llm import ModelClient
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer, DeliveryPolicy
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.pipeline.responder import Responder
from chatgpt_wecom.daemon.pipeline.worker import Worker
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.inbox import InboxStore
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.wecom.api import RetryPolicy, WeComClient, WeComConfigError
from chatgpt_wecom.daemon.wecom.crypto import WeComCrypto

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs that are not configuration keys: defaults for production, shortened by tests and benchmarks."""

    concurrency: int = 32
    shutdown_grace: float = 20.0
    wecom_retry: RetryPolicy = field(default_factory=RetryPolicy)
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)


class Services:
    """Open with `async with Services(settings) as services:` (or `await open()` / `await close()`)."""

    def __init__(self, settings: Settings, tuning: Tuning | None = None) -> None:
        self.settings = settings
        self.tuning = tuning or Tuning()
        self.ready = False
        self.bus = EventBus()
        self.crypto = WeComCrypto(
            settings.receive_msg_token.get_secret_value(),
            settings.receive_msg_key.get_secret_value(),
            settings.corp_id,
        )

    async def open(self) -> Services:
        s, t = self.settings, self.tuning
        s.data_dir.mkdir(parents=True, exist_ok=True)
        self.db = await Database.open(s.database_path)
        self.inbox = InboxStore(self.db)
        self.outbox = OutboxStore(self.db)
        self.conversations = ConversationStore(self.db)
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
        self.responder = Responder(s, self.conversations, self.model, self.bus)
        self.deliverer = Deliverer(self.outbox, self.wecom, self.bus, t.delivery)
        self.worker = Worker(self.db, self.inbox, self.responder, self.deliverer, self.bus, reply_format=s.reply_format)
        self.dispatcher = Dispatcher(self.worker.process, self.bus, t.concurrency)
        self.warn_unenforced()
        return self

    def warn_unenforced(self) -> None:
        s = self.settings
        keys = [
            k for k in ("allow_users", "deny_users", "vip_users", "admin_users", "sensitive_words") if getattr(s, k)
        ]
        keys += ["max_request"] if s.max_request else []
        if keys:
            log.warning("config: %s set but not enforced by this version yet", ", ".join(keys))

    async def resume(self) -> int:
        """Queue every message accepted before a stop and not finished; returns how many."""
        rows = await self.inbox.open_rows()
        for row in rows:
            self.dispatcher.submit(row.user_id, row.id)
        if rows:
            log.info("pipeline: resuming %d unfinished message(s)", len(rows))
        return len(rows)

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
