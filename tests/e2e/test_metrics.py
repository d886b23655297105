"""/metrics end to end: a real daemon answers, refuses and fails to deliver; Prometheus' own parser reads the
scrape, and the counts are what happened."""

from __future__ import annotations

import asyncio
import json
import re
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from chatgpt_wecom.daemon.channels.base import Feedback
from chatgpt_wecom.daemon.metrics import MetricsListenError
from chatgpt_wecom.daemon.pipeline.pacing import Rate
from chatgpt_wecom.demo.ports import unused_port
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, make_settings
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel, ModelRequest
from tests.fakes.wecom import FakeWeCom

REJECTED = 81013  # WeCom: no such user in the app's visible range (refused for good)


class Scrape:
    """One scrape of /metrics, as Prometheus' parser reads it."""

    def __init__(self, text: str) -> None:
        families = list(text_string_to_metric_families(text))
        self.families = {family.name for family in families}  # a counter's without `_total`
        self.samples = {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}

    def __call__(self, name: str, **labels: str) -> float | None:
        return self.samples.get((f"chatgpt_wecom_{name}", frozenset(labels.items())))


async def scrape(http: aiohttp.ClientSession, url: str) -> Scrape:
    async with http.get(url) as resp:
        assert resp.status == 200, resp.status
        assert resp.content_type == "text/plain"
        return Scrape(await resp.text())


async def scrape_until(
    http: aiohttp.ClientSession, url: str, ready: Callable[[Scrape], bool], what: str, timeout: float = 10.0
) -> Scrape:
    """Scrape until `ready` holds (the metrics follow the event bus: a moment after the fact)."""
    deadline = time.monotonic() + timeout
    while not ready(found := await scrape(http, url)):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.01)
    return found


def listening_ports() -> set[int]:
    """The TCP ports this process listens on (Linux: its socket inodes in /proc/net/tcp*)."""
    fds = Path("/proc/self/fd")
    inodes = set()
    for fd in fds.iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


@pytest.fixture
async def daemon_with_metrics(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> AsyncIterator[tuple[DaemonRunner, str]]:
    port = unused_port()
    settings = make_settings(tmp_path, wecom, model, metrics_listen=f"127.0.0.1:{port}")
    async with DaemonRunner(settings) as daemon:
        yield daemon, f"http://127.0.0.1:{port}/metrics"


async def test_a_conversation_is_counted(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    port = unused_port()
    url = f"http://127.0.0.1:{port}/metrics"
    settings = make_settings(tmp_path, wecom, model, metrics_listen=f"127.0.0.1:{port}", max_request=1)
    gate = asyncio.Event()

    async def slow(_request: ModelRequest) -> str:
        await gate.wait()
        return "好的"

    model.set_reply(slow)
    memory = MemoryChannel(up=False)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        http = daemon.http
        first = next(MSG_IDS)
        await daemon.ask("alice", "你好", first)
        await daemon.ask("alice", "再问一个", next(MSG_IDS))  # over the quota of 1, and queued behind the first
        busy = await scrape_until(http, url, lambda m: m("answers_in_flight") == 1 and m("queue_depth") == 1,
                                  "one answer in flight and one queued")  # fmt: skip
        assert busy("channel_up", channel="wecom") == 1 and busy("channel_up", channel="memory") == 0
        gate.set()
        await daemon.ask("alice", "你好", first)  # WeCom's retry of the first: acked, not stored again
        await wecom.wait_for_sent(2, user="alice")
        wecom.fail("/cgi-bin/message/send", errcode=REJECTED)
        await daemon.ask("bob", "在吗", next(MSG_IDS))  # answered, but WeCom refuses the reply for good
        await memory.receive("carol", "hi")
        await daemon.idle()
        answers = [r for r in model.requests if r.kind == "chat"]
        model.fail(500)
        await memory.receive("dave", "hi")  # the model fails: an apology
        await daemon.idle()
        assert daemon.services is not None
        await daemon.services.intake.feedback(memory, Feedback(answer_id="m1", user_id="carol", rating="good"))
        m = await scrape_until(http, url, lambda m: m("feedback_total", channel="memory", rating="good") == 1,
                               "the feedback to be counted")  # fmt: skip

    assert m("messages_received_total", channel="wecom", msg_type="text") == 3
    assert m("messages_received_total", channel="memory", msg_type="text") == 2
    assert m("acks_total", channel="wecom", result="stored") == 3
    assert m("acks_total", channel="wecom", result="duplicate") == 1
    assert m("ack_latency_seconds_count", channel="wecom") == 4
    assert m("questions_refused_total", reason="quota") == 1
    assert len(answers) == 3  # alice's first, bob's, carol's
    assert m("answers_total", outcome="answered") == 3
    assert m("answers_total", outcome="error") == 1 and m("errors_total", source="model") == 1
    assert m("model_latency_seconds_count", model="gpt-4o-mini") == 3
    assert m("model_first_token_seconds_count", model="gpt-4o-mini") == 3  # streamed: the default
    # The fake model reports characters as tokens: the prompts' lengths, and len("好的") per answer.
    assert m("model_tokens_total", model="gpt-4o-mini", kind="prompt") == sum(r.total_chars for r in answers)
    assert m("model_tokens_total", model="gpt-4o-mini", kind="completion") == 3 * len("好的")
    assert m("deliveries_total", channel="wecom", result="sent") == 2  # alice's answer and her quota notice
    assert m("deliveries_total", channel="wecom", result="failed") == 1  # bob's answer
    assert m("deliveries_total", channel="memory", result="sent") == 2  # carol's answer, dave's apology
    assert m("queue_depth") == 0 and m("answers_in_flight") == 0 and m("deliveries_waiting") == 0
    assert m("channel_reconnects_total", channel="wecom") == 0


async def test_a_reply_held_back_by_the_members_pace_is_shown_waiting(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    port = unused_port()
    url = f"http://127.0.0.1:{port}/metrics"
    settings = make_settings(tmp_path, wecom, model, metrics_listen=f"127.0.0.1:{port}")
    async with DaemonRunner(settings, replace(FAST, member_rates=(Rate(1, 60.0),))) as daemon:
        await daemon.say("u1", "一")
        await daemon.ask("u1", "二", next(MSG_IDS))  # its reply must wait a minute: the stop ends the wait
        m = await scrape_until(http=daemon.http, url=url, ready=lambda m: m("deliveries_waiting") == 1,
                               what="a delivery waiting")  # fmt: skip
        assert m("delivery_waits_total", channel="wecom") == 1
        assert m("deliveries_total", channel="wecom", result="sent") == 1


async def test_off_by_default_and_never_on_the_public_port(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    linux = sys.platform == "linux"
    before = listening_ports() if linux else set()
    settings = make_settings(tmp_path, wecom, model)
    assert settings.metrics_listen == ""
    async with DaemonRunner(settings) as daemon:
        if linux:
            assert listening_ports() - before == {settings.port}  # the callback only
        async with daemon.http.get(f"{daemon.url}/metrics") as resp:
            assert resp.status == 404

    port = unused_port()
    settings = make_settings(tmp_path / "on", wecom, model, metrics_listen=f"127.0.0.1:{port}")
    async with DaemonRunner(settings) as daemon:
        if linux:
            assert listening_ports() - before == {settings.port, port}
        async with daemon.http.get(f"{daemon.url}/metrics") as resp:
            assert resp.status == 404  # the public port does not show them
        async with daemon.http.get(f"http://127.0.0.1:{port}/healthz") as resp:
            assert resp.status == 404  # and the metrics port shows nothing else
        assert (await scrape(daemon.http, f"http://127.0.0.1:{port}/metrics"))("queue_depth") == 0
    if linux:
        assert listening_ports() == before  # closed at shutdown


async def test_the_dashboard_shows_only_metrics_the_daemon_has(daemon_with_metrics: tuple[DaemonRunner, str]) -> None:
    daemon, url = daemon_with_metrics
    families = (await scrape(daemon.http, url)).families
    dashboard = (Path(__file__).parents[2] / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8")
    json.loads(dashboard)
    shown = {re.sub(r"_(total|bucket)$", "", name) for name in re.findall(r"chatgpt_wecom_\w+", dashboard)}
    assert len(shown) >= 6 and shown <= families


async def test_a_port_in_use_names_the_key(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        runner = DaemonRunner(make_settings(tmp_path, wecom, model, metrics_listen=f"127.0.0.1:{port}"))
        try:
            with pytest.raises(MetricsListenError, match=rf"cannot listen on 127.0.0.1:{port} .*metrics_listen"):
                await runner.start()
        finally:
            await runner.http.close()
