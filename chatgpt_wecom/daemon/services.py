"""The container: every long-lived object of the daemon, built in dependency order and closed in reverse.

`open()` builds inside an `AsyncExitStack`: each resource registers its close as soon as it is opened, so a
start-up that fails part-way (a damaged key file, a database that is not one, a channel that cannot be set up)
closes what was already open — the database, the inbox writer's thread, the HTTP session, the channels, the
model client — before the error propagates. `close()` unwinds the same stack: drain first, then each resource
in the reverse order of opening.

Nothing here acts on the daemon: what an operator does is `operator.py`, the start-up and shutdown sequence is
`main.py`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

import aiohttp

from chatgpt_wecom.config import Settings, redact_userinfo
from chatgpt_wecom.daemon.answer.router import Collaborators, Responder
from chatgpt_wecom.daemon.channels.base import Channel, MediaUnavailable
from chatgpt_wecom.daemon.channels.misconfigured import MisconfigurationReports
from chatgpt_wecom.daemon.channels.registry import configured_channels
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.listener import ListenerLimits
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.live_settings import LiveSettings, load_templates
from chatgpt_wecom.daemon.logs import LogRing
from chatgpt_wecom.daemon.media.files import RichMedia
from chatgpt_wecom.daemon.model.client import ModelClient
from chatgpt_wecom.daemon.operator import Operator, Pause
from chatgpt_wecom.daemon.pipeline.delivery import Deliverer, DeliveryPolicy
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher
from chatgpt_wecom.daemon.pipeline.intake import Intake
from chatgpt_wecom.daemon.pipeline.pacing import Rate
from chatgpt_wecom.daemon.pipeline.worker import Worker
from chatgpt_wecom.daemon.pruner import Pruner
from chatgpt_wecom.daemon.store.audit import AuditLog
from chatgpt_wecom.daemon.store.conversations import ConversationStore
from chatgpt_wecom.daemon.store.db import Database
from chatgpt_wecom.daemon.store.directory import DirectoryStore
from chatgpt_wecom.daemon.store.drafts import DraftStore
from chatgpt_wecom.daemon.store.feedback import FeedbackStore
from chatgpt_wecom.daemon.store.history import HistoryStore
from chatgpt_wecom.daemon.store.inbox import InboxStore, InboxWriter
from chatgpt_wecom.daemon.store.outbox import OutboxStore
from chatgpt_wecom.daemon.store.policy import PolicyStore
from chatgpt_wecom.daemon.store.private import secure_data_dir
from chatgpt_wecom.daemon.store.retention import RetentionStore
from chatgpt_wecom.daemon.store.state import DaemonState
from chatgpt_wecom.daemon.store.usage import UsageStore
from chatgpt_wecom.daemon.web.links import HistoryLinks, LinkSigner

log = logging.getLogger(__name__)

LOG_LINES = 2000  # recent log lines kept in memory for the control API


@dataclass(frozen=True, slots=True)
class Tuning:
    """Knobs that are not configuration keys: defaults for production, changed by tests and benchmarks."""

    shutdown_grace: float = 20.0
    http_retry: RetryPolicy = field(default_factory=RetryPolicy)  # the channels' API clients
    connection: ConnectionPolicy = field(default_factory=ConnectionPolicy)  # the connection channels' WebSockets
    delivery: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    member_rates: tuple[Rate, ...] | None = None  # per recipient, instead of each channel's own (None: the channel's)
    clock: Callable[[], float] = time.time  # "now" for received messages, quotas and usage
    listener: ListenerLimits = field(default_factory=ListenerLimits)  # the public port's timeouts and cap
    checkpoint_every: float = 2.0  # seconds between checkpoints of an answer growing in place
    prune_first_after: float = 60.0  # seconds from start to the first prune (retention_days)
    prune_every: float = 86_400.0  # seconds between prunes


class Services:
    """Open with `async with Services(settings) as services:` (or `await open()` / `await close()`)."""

    def __init__(
        self,
        settings: Settings,
        tuning: Tuning | None = None,
        config_path: Path | None = None,
        extra_channels: Sequence[Channel] = (),
    ) -> None:
        self._settings = settings  # as started; what is in force later is `live.settings`
        self.tuning = tuning or Tuning()
        self.config_path = config_path
        self.ready = False
        self.stopping = asyncio.Event()  # set when shutdown begins (event streams end on it)
        self.started_at = time.time()
        self.bus = EventBus()
        self._extra_channels = extra_channels  # beside the configured ones (an embedder's own transport, tests)
        self._opened = AsyncExitStack()  # what close() unwinds

    def _scrub(self, line: str) -> str:
        """`line` with every secret in force masked (a password in a URL too)."""
        for secret in sorted((v for v in self.live.settings.secret_values() if len(v) >= 4), key=len, reverse=True):
            line = line.replace(secret, "***")
        return redact_userinfo(line)

    async def open(self) -> Services:
        """Build everything; if any step fails, close what the earlier ones opened and raise."""
        async with AsyncExitStack() as stack:
            await self._build(stack)
            self._opened = stack.pop_all()  # built: from now on close() owns these
        return self

    async def _build(self, stack: AsyncExitStack) -> None:
        s, t = self._settings, self.tuning
        # Files first: a config or templates problem stops the start before anything is open.
        self.live = LiveSettings(s, load_templates(self.config_path))  # the settings and templates in force
        # The recent log lines, for `GET /v1/logs` (the TUI's Log page): from now until close, secrets masked.
        self.logs = LogRing(LOG_LINES, scrub=self._scrub)
        logging.getLogger().addHandler(self.logs)
        stack.callback(logging.getLogger().removeHandler, self.logs)
        secure_data_dir(s.data_dir, s.database_path)  # 0700 folder, 0600 files, whatever the umask

        # The database and its stores.
        self.db = await Database.open(s.database_path)
        stack.push_async_callback(self.db.close)
        writer = InboxWriter(s.database_path)
        self.inbox = InboxStore(self.db, writer)
        stack.push_async_callback(self.inbox.close)  # flushes, then ends the writer's thread (even if never opened)
        await writer.open()
        self.outbox = OutboxStore(self.db)
        self.drafts = DraftStore(self.db)
        self.feedback = FeedbackStore(self.db)
        self.conversations = ConversationStore(self.db)
        self.usage = UsageStore(self.db)
        self.history = HistoryStore(self.db)
        self.directory = DirectoryStore(self.db)
        self.audit = AuditLog(self.db)
        self.state = DaemonState(self.db)
        self.pruner = Pruner(RetentionStore(self.db, s.data_dir), self.live, t.clock,
                             first_after=t.prune_first_after, every=t.prune_every)  # fmt: skip
        stack.push_async_callback(self.pruner.stop)  # started by serve(); stopped before the database closes
        self.pause = Pause(self.db, self.state, self.live, self.bus)
        await self.pause.restore()
        self.policy = LivePolicy(PolicyStore(self.db), self.bus)
        applied = await self.policy.apply_config(s)
        if applied:
            log.info("policy: applied from the config file: %s", ", ".join(applied))

        # Clients of the outside world.
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=t.http_retry.timeout))
        stack.push_async_callback(self.http.close)
        configured = configured_channels(s, self.http, t.http_retry, MisconfigurationReports(self.bus), t.connection)
        self.channels = {c.name: c for c in [*configured, *self._extra_channels]}
        for channel in self.channels.values():
            stack.push_async_callback(channel.stop)
        self.model = ModelClient.from_settings(s)
        stack.push_async_callback(self.model.close)
        self.links = LinkSigner.from_data_dir(s.data_dir, clock=t.clock)
        self.history_links = HistoryLinks(self.links, self.live)
        self.rich = RichMedia(s.data_dir, self.model, self._fetch_media)

        # The pipeline, and what an operator does with it.
        self.responder = Responder(self.live, Collaborators(
            self.conversations, self.usage, self.policy, self.model, self.rich, self.bus, self.history_links.reply,
            self.pause.notice, t.clock,
        ))  # fmt: skip
        self.deliverer = Deliverer(self.outbox, self.channels, self.bus, t.delivery, t.member_rates)
        self.worker = Worker(
            self.db, self.inbox, self.outbox, self.responder, self.deliverer, self.bus,
            live=self.live, channels=self.channels, answer_link=self.history_links.link, drafts=self.drafts,
            checkpoint_every=t.checkpoint_every,
        )  # fmt: skip
        self.dispatcher = Dispatcher(self.worker.process, self.bus, s.max_concurrent_answers)
        self.intake = Intake(self.inbox, self.bus, self.dispatcher, t.clock, self.feedback)
        stack.push_async_callback(self.drain)  # the first thing closing does
        self.operator = Operator(self)

    async def requeue_unfinished(self) -> int:
        """Queue every message accepted before a stop and not finished; returns how many."""
        await self.deliverer.resume()  # sends made before the stop still count against each member's pace
        rows = await self.inbox.open_rows()
        self.intake.resume(rows)
        if rows:
            log.info("pipeline: resuming %d unfinished message(s)", len(rows))
        return len(rows)

    async def _fetch_media(self, channel: str, ref: str) -> tuple[bytes, str]:
        """Media a user sent, from the channel their message came by."""
        if channel not in self.channels:
            raise MediaUnavailable(f"channel {channel!r} is not configured any more")
        return await self.channels[channel].fetch_media(ref)

    async def drain(self) -> None:
        """Start no new message; let those in progress finish within the grace period (the rest resume later)."""
        self.ready = False
        self.stopping.set()
        self.deliverer.stop()
        await self.dispatcher.stop(self.tuning.shutdown_grace)

    async def close(self) -> None:
        """Drain (if not yet), then close what open() opened, last opened first: the model client, the channels,
        the HTTP session, the inbox writer, the database. Safe to call again, and after a failed open()."""
        await self._opened.aclose()

    async def __aenter__(self) -> Services:
        return await self.open()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
