"""Every long-lived object of the daemon, built and closed in one place, in dependency order."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.answer.router import Collaborators, Responder
from chatgpt_wecom.daemon.channels.base import Channel, MediaUnavailable
from chatgpt_wecom.daemon.channels.registry import configured_channels
from chatgpt_wecom.daemon.channels.retry import RetryPolicy
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.live_settings import LiveSettings, load_templates
from chatgpt_wecom.daemon.media.files import RichMedia
from chatgpt_wecom.daemon.model.client import ModelClient
from chatgpt_wecom.daemon.operator import Operator, Pause
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer, DeliveryPolicy
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.pipeline.intake import Intake
from chatgpt_wecom.daemon.pipeline.pacing import Rate
from chatgpt_wecom.daemon.pipeline.worker import Worker
from chatgpt_wecom.daemon.store.audit import AuditLog
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.history import HistoryStore
from chatgpt_wecom.daemon.store.inbox import InboxStore, InboxWriter
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.policy import PolicyStore
from chatgpt_wecom.daemon.store.private import secure_data_dir
from chatgpt_wecom.daemon.store.state import DaemonState
from chatgpt_wecom.daemon.store.usage import UsageStore
from chatgpt_wecom.daemon.web.links import HistoryLinks, LinkSigner

log = logging.getLogger(__name__)

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


class Services:
    """Open with `async with Services(settings) as services:` (or `await open()` / `await close()`)."""

    def __init__(
        self,
        settings: Settings,
        tuning: Tuning | None = None,
        config_path: Path | None = None,
        extra_channels: Sequence[Channel] = (),
    ) -> None:
        self.live = LiveSettings(settings, load_templates(config_path))  # the settings and templates in force
        self.tuning = tuning or Tuning()
        self.config_path = config_path
        self.ready = False
        self.stopping = asyncio.Event()  # set when shutdown begins (event streams end on it)
        self.started_at = time.time()
        self._config_errors: dict[str, tuple[float, int]] = {}  # what -> (when reported, times since)
        self.bus = EventBus()
        self._extra_channels = extra_channels  # beside the configured ones (an embedder's own transport, tests)

    async def open(self) -> Services:
        s, t = self.live.settings, self.tuning
        secure_data_dir(s.data_dir, s.database_path)  # 0700 folder, 0600 files, whatever the umask
        self.db = await Database.open(s.database_path)
        self.inbox = InboxStore(self.db, await InboxWriter(s.database_path).open())
        self.outbox = OutboxStore(self.db)
        self.conversations = ConversationStore(self.db)
        self.usage = UsageStore(self.db)
        self.history = HistoryStore(self.db)
        self.audit = AuditLog(self.db)
        self.state = DaemonState(self.db)
        self.pause = Pause(self.db, self.state, self.live, self.bus)
        await self.pause.restore()
        self.policy = LivePolicy(PolicyStore(self.db), self.bus)
        applied = await self.policy.apply_config(s)
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=t.http_retry.timeout))
        configured = configured_channels(s, self.http, t.http_retry, self._misconfigured)
        self.channels = {c.name: c for c in [*configured, *self._extra_channels]}
        self.model = ModelClient.from_settings(s)
        self.links = LinkSigner.from_data_dir(s.data_dir, clock=t.clock)
        self.history_links = HistoryLinks(self.links, self.live)
        self.rich = RichMedia(s.data_dir, self.model, self._fetch_media)
        self.responder = Responder(self.live, Collaborators(
            self.conversations, self.usage, self.policy, self.model, self.rich, self.bus, self.history_links.reply,
            self.pause.notice, t.clock,
        ))  # fmt: skip
        self.deliverer = Deliverer(self.outbox, self.channels, self.bus, t.delivery, t.member_rates)
        self.worker = Worker(
            self.db, self.inbox, self.outbox, self.responder, self.deliverer, self.bus,
            live=self.live, channels=self.channels, answer_link=self.history_links.link,
        )  # fmt: skip
        self.dispatcher = Dispatcher(self.worker.process, self.bus, t.concurrency)
        self.intake = Intake(self.inbox, self.bus, self.dispatcher, t.clock)
        self.operator = Operator(self)
        return self

    async def requeue_unfinished(self) -> int:
        """Queue every message accepted before a stop and not finished; returns how many."""
        await self.deliverer.resume()  # sends made before the stop still count against each member's pace
        rows = await self.inbox.open_rows()
        self.intake.resume(rows)
        if rows:
            log.info("pipeline: resuming %d unfinished message(s)", len(rows))
        return len(rows)

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
