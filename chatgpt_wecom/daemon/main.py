"""serve(): open the services, start the callback site, resume unfinished work, stop in order on a signal.

Shutdown order on SIGTERM/SIGINT: close the control socket → let answers in progress finish within the grace
period (callbacks are still acked and stored meanwhile, and answered after the next start) → close the listener →
close /metrics (it is scraped during the drain) → close clients and the database → exit 0.

A second SIGTERM/SIGINT once the shutdown has begun exits at once, with 128 + the signal's number (143, 130: what
a shell reports for a process ended by that signal), so that it is not mistaken for a clean stop. Nothing
accepted is lost by it: a message is committed before its ack and an answer before it is sent, so this is no
worse than kill -9 — what was in progress is finished after the next start.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import signal
from collections.abc import Callable, Sequence
from pathlib import Path

from aiohttp import web

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Channel
from chatgpt_wecom.daemon.channels.registry import max_body
from chatgpt_wecom.daemon.control.api import make_control_app
from chatgpt_wecom.daemon.control.site import remove_socket, start_control_site
from chatgpt_wecom.daemon.keys import SERVICES
from chatgpt_wecom.daemon.listener import PublicListener
from chatgpt_wecom.daemon.metrics import Metrics, MetricsSite
from chatgpt_wecom.daemon.operator import Reload
from chatgpt_wecom.daemon.services import Services, Tuning
from chatgpt_wecom.daemon.web.history_page import add_history_routes

log = logging.getLogger(__name__)

WAL_CHECKPOINT_EVERY = 10.0  # seconds: the WAL is copied into the database here, never on the ack path

FORCED_EXIT = 128  # + the signal's number: the exit code of a shutdown cut short by a second signal


def make_web_app(services: Services) -> web.Application:
    """The public HTTP application: /healthz, the signed history pages and each HTTP channel's routes; a request
    to any other path goes to the channel that claims it (the WeCom app takes its signed callbacks on any path,
    as the Go project did), else 404."""
    channels = list(services.channels.values())
    app = web.Application(client_max_size=max_body(channels))
    app[SERVICES] = services
    app.router.add_get("/healthz", healthz)
    add_history_routes(app)
    for channel in channels:
        channel.add_routes(app, services.intake)

    async def claimed(request: web.Request) -> web.StreamResponse:
        for channel in channels:
            if channel.claims(request):
                return await channel.handle(request)
        raise web.HTTPNotFound

    app.router.add_route("*", "/{tail:.*}", claimed)
    return app


async def healthz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    if not services.ready:
        state = "stopping" if services.stopping.is_set() else "starting"
        return web.json_response({"status": state}, status=503)
    return web.json_response({"status": "ok"})


def stop_or_exit(stop: asyncio.Event, sig: signal.Signals) -> None:
    """The first SIGTERM/SIGINT starts the orderly shutdown; one that comes while it runs ends the process now."""
    if not stop.is_set():
        stop.set()
        return
    log.warning("%s during the shutdown: exiting now (code %d); answers in progress are finished after the next "
                "start", sig.name, FORCED_EXIT + sig)  # fmt: skip
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(FORCED_EXIT + sig)


def _public_listener(services: Services, settings: Settings) -> PublicListener:
    """The public port's listener, keeping a descriptor aside for each answer in flight (its model connection)."""
    limits = services.tuning.listener
    limits = dataclasses.replace(limits, reserve=limits.reserve + settings.max_concurrent_answers)
    return PublicListener(make_web_app(services), limits, access_log=None, handle_signals=False, shutdown_timeout=5.0)


def _settle(services: Services) -> set[asyncio.Task[None]]:
    """Once started: keep what start-up made out of the garbage collector, and checkpoint the WAL off the ack path.

    What start-up made (modules, settings, the apps) lives as long as the process; without `gc.freeze` the
    collector's full passes walked all of it and stalled every callback in flight (p99 of bench/callback.py with
    50 in flight and answers held back: 205 ms; 89 ms with the checkpoints off the ack path, 54 ms with both)."""
    gc.freeze()
    return {asyncio.create_task(services.db.checkpoint_every(WAL_CHECKPOINT_EVERY), name="wal-checkpoints")}


async def _cancel(tasks: set[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def serve(
    settings: Settings,
    tuning: Tuning | None = None,
    stop: asyncio.Event | None = None,
    config_path: Path | None = None,
    on_ready: Callable[[Services], None] | None = None,
    extra_channels: Sequence[Channel] = (),
) -> None:
    """Run the daemon until SIGTERM/SIGINT (or until `stop` is set); SIGHUP reloads `config_path`. A SIGTERM/SIGINT
    during the shutdown exits the process at once (`stop_or_exit`).

    `on_ready` is called once everything listens (in-process embedders and tests use it).
    """
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_or_exit, stop, sig)
    services = await Services(settings, tuning, config_path, extra_channels).open()
    # No handler_cancellation: an operator's request runs to its end even if the client leaves half-way.
    control = web.AppRunner(make_control_app(services), access_log=None, handle_signals=False, shutdown_timeout=1.0)
    reloads: set[asyncio.Task[Reload]] = set()
    socket_created = False

    def reload() -> None:
        task = asyncio.create_task(services.operator.reload(), name="reload")
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    loop.add_signal_handler(signal.SIGHUP, reload)
    metrics = MetricsSite(Metrics(services), settings.metrics_listen) if settings.metrics_listen else None
    listener = _public_listener(services, settings)
    tasks: set[asyncio.Task[None]] = set()  # the daemon's own background work, ended first on the way out
    try:
        await control.setup()
        await start_control_site(control, settings.socket_path)
        socket_created = True
        if metrics is not None:
            await metrics.start()
        await services.requeue_unfinished()  # before new callbacks, so each user's older messages go first
        await listener.start(settings.host, settings.port)
        for channel in services.channels.values():  # connection channels dial out (and reconnect by themselves)
            await channel.start(services.intake)
        tasks.update(_settle(services))
        services.ready = True
        services.pruner.start()  # retention_days: shortly after start, then daily
        if on_ready is not None:
            on_ready(services)
        log.info(
            "chatgpt-wecom listening on %s:%d, channels %s, control socket %s, model %s at %s",
            settings.host, settings.port, ", ".join(services.channels) or "none", settings.socket_path,
            services.model.model, services.model.endpoint,
        )  # fmt: skip
        await stop.wait()
        log.info("shutting down: finishing answers in progress; new messages are stored for the next start")
    finally:
        services.ready = False
        services.stopping.set()
        await _cancel(tasks)
        await asyncio.gather(*reloads, return_exceptions=True)
        await control.cleanup()
        if socket_created:
            remove_socket(settings.socket_path)
        # Drain while the callback still acks and stores: WeCom gives up after a few retries, so refusing
        # callbacks during the grace period would lose messages sent during a restart.
        await services.drain()
        await listener.close()  # stops accepting, lets callbacks in flight finish storing
        if metrics is not None:
            await metrics.close()
        await services.close()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
        log.info("stopped")
