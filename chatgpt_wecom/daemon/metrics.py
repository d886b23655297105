"""/metrics: the daemon's counters and gauges in Prometheus' text format, on a listener of its own (metrics_listen).

- Counters and histograms are folded from the event bus (one subscriber, like a live-event client), so they are
  the same for every channel; gauges — the queue, answers in flight, each channel's connection — are read from
  the services when Prometheus scrapes.
- Each daemon has its own `CollectorRegistry` (never the process-wide one: tests run several daemons at once).
- Labels are few and bounded: channel, msg_type, result, reason, rating, model, source — never a user.
- The listener is a separate `AppRunner`/`TCPSite`: not the public port, not the control socket. It holds no
  secret, but bind it to loopback or a private address all the same.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING

from aiohttp import web
from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.aiohttp import make_aiohttp_handler
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from chatgpt_wecom.config_values import listen_address
from chatgpt_wecom.daemon.events import Event

if TYPE_CHECKING:
    from chatgpt_wecom.daemon.services import Services

log = logging.getLogger(__name__)

PREFIX = "chatgpt_wecom_"
QUEUE = 10_000  # events the subscriber may fall behind by before it loses some (counted in events_dropped)
ACK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)  # WeCom retries after 5 s
MODEL_BUCKETS = (0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0, 120.0, 300.0)
BY_CHANNEL = ["channel"]


class Metrics:
    """The daemon's metrics in a registry of its own; `fold` keeps them up to date from events."""

    def __init__(self, services: Services) -> None:
        self.registry = CollectorRegistry()

        def counter(name: str, doc: str, *labels: str) -> Counter:
            return Counter(PREFIX + name, doc, labels, registry=self.registry)

        def histogram(name: str, doc: str, label: str, buckets: tuple[float, ...]) -> Histogram:
            return Histogram(PREFIX + name, doc, [label], buckets=buckets, registry=self.registry)

        self.received = counter("messages_received", "Messages stored in the inbox.", "channel", "msg_type")
        self.acks = counter("acks", "Messages acked to their transport: stored, or duplicate (a retry).",
                            "channel", "result")  # fmt: skip
        self.ack_latency = histogram("ack_latency_seconds", "Storing a message before its ack.", "channel", ACK_BUCKETS)
        self.model_latency = histogram("model_latency_seconds", "Asking the model until the whole answer.", "model",
                                       MODEL_BUCKETS)  # fmt: skip
        self.first_token = histogram("model_first_token_seconds", "Asking the model until its first text (streamed "
                                     "answers).", "model", MODEL_BUCKETS)  # fmt: skip
        self.tokens = counter("model_tokens", "Tokens the model reported: prompt, completion.", "model", "kind")
        self.answers = counter("answers", "Model answers by outcome: answered, error.", "outcome")
        self.refused = counter("questions_refused", "Questions refused before the model: quota, too_long, "
                               "sensitive_word.", "reason")  # fmt: skip
        self.deliveries = counter("deliveries", "Sends of a reply's messages: sent, retry (tried again later), failed "
                                  "(for good).", "channel", "result")  # fmt: skip
        self.waits = counter("delivery_waits", "Messages held back by a recipient's pace or a slow-down.", "channel")
        self.feedback = counter("feedback", "Users' verdicts on answers: good, bad, cancelled.", "channel", "rating")
        self.errors = counter("errors", "Errors shown to the operator, by source.", "source")
        self.dropped = counter("metrics_events_dropped", "Events these metrics missed (they fell behind).")
        self.registry.register(_Gauges(services))
        self._events = services.bus.subscribe(QUEUE)  # now, so that the resume after a restart is counted
        self._task: asyncio.Task[None] | None = None

    def fold(self, event: Event) -> None:
        d = event.data
        channel = str(d.get("channel") or "")
        if event.dropped:
            self.dropped.inc(event.dropped)
        match event.kind:
            case "message.received":
                self.received.labels(channel, str(d.get("msg_type") or "")).inc()
                self._acked(channel, "stored", d.get("stored_in"))
            case "message.duplicate":
                self._acked(channel, "duplicate", d.get("stored_in"))
            case "answer.finished":
                model = str(d.get("model") or "")
                self.answers.labels("answered").inc()
                self.model_latency.labels(model).observe(float(d.get("latency") or 0))
                if d.get("first_token") is not None:
                    self.first_token.labels(model).observe(float(d["first_token"]))
                self.tokens.labels(model, "prompt").inc(int(d.get("prompt_tokens") or 0))
                self.tokens.labels(model, "completion").inc(int(d.get("completion_tokens") or 0))
            case "question.refused":
                self.refused.labels(str(d.get("reason") or "")).inc()
            case "delivery.sent":
                self.deliveries.labels(channel, "sent").inc()
            case "delivery.failed":
                self.deliveries.labels(channel, "failed" if d.get("final") else "retry").inc()
            case "delivery.waiting":
                self.waits.labels(channel).inc()
            case "feedback":
                self.feedback.labels(channel, str(d.get("rating") or "")).inc()
            case "error":
                source = str(d.get("source") or "")
                self.errors.labels(source).inc()
                if source == "model":
                    self.answers.labels("error").inc()

    def _acked(self, channel: str, result: str, seconds: object) -> None:
        self.acks.labels(channel, result).inc()
        if isinstance(seconds, int | float):
            self.ack_latency.labels(channel).observe(seconds)

    def start(self) -> None:
        """Follow the bus until `close`."""
        self._task = asyncio.create_task(self._follow(), name="metrics")

    async def _follow(self) -> None:
        async for event in self._events:
            try:
                self.fold(event)
            except Exception:  # a defect here must not stop the counting of everything after it
                log.exception("metrics: could not count a %s event", event.kind)

    async def close(self) -> None:
        self._events.close()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class _Gauges:
    """What is true now, read from the services at each scrape."""

    def __init__(self, services: Services) -> None:
        self._services = services

    def collect(self) -> Iterator[Metric]:
        s = self._services
        queued = GaugeMetricFamily(f"{PREFIX}queue_depth", "Messages waiting for their turn to be answered.")
        queued.add_metric([], s.dispatcher.depth - s.dispatcher.in_flight)
        running = GaugeMetricFamily(f"{PREFIX}answers_in_flight", "Messages being answered or delivered now.")
        running.add_metric([], s.dispatcher.in_flight)
        waiting = GaugeMetricFamily(f"{PREFIX}deliveries_waiting", "Messages held back now (pace, slow-down).")
        waiting.add_metric([], s.deliverer.waiting)
        up = GaugeMetricFamily(f"{PREFIX}channel_up", "1 while a channel is connected (or listens).", labels=BY_CHANNEL)
        reconnects = CounterMetricFamily(f"{PREFIX}channel_reconnects", "A channel's reconnections.", labels=BY_CHANNEL)
        for name, channel in s.channels.items():
            up.add_metric([name], 1 if channel.state.up else 0)
            reconnects.add_metric([name], channel.state.reconnects)
        yield from (queued, running, waiting, up, reconnects)


class MetricsListenError(Exception):
    """The /metrics listener cannot listen where metrics_listen says; the message says so, naming the key."""


class MetricsSite:
    """The /metrics listener of `metrics`, at `listen` ("host:port")."""

    def __init__(self, metrics: Metrics, listen: str) -> None:
        app = web.Application()
        app.router.add_get("/metrics", make_aiohttp_handler(metrics.registry))
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=1.0)
        self._host, self._port = listen_address(listen)
        self._metrics = metrics

    async def start(self) -> None:
        self._metrics.start()
        await self._runner.setup()
        try:
            await web.TCPSite(self._runner, self._host, self._port).start()
        except OSError as exc:
            where = f"{self._host}:{self._port}"
            raise MetricsListenError(f"cannot listen on {where} for /metrics: {exc.strerror} (config key: "
                                     "metrics_listen)") from None  # fmt: skip
        log.info("metrics: Prometheus /metrics on %s:%d", self._host, self._port)

    async def close(self) -> None:
        await self._runner.cleanup()
        await self._metrics.close()
