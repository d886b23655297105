"""The DingTalk Stream connection against FakeDingTalk's gateway: pings, disconnect (the new socket opens before
the old one closes), abrupt and clean closes, a silent socket, refused credentials — reconnects at growing
delays, never a hot loop — and a clean stop."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.channels.dingtalk.stream import BACKOFF_SCALE
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy
from tests.daemon_runner import DaemonRunner
from tests.dingtalk_runner import CONNECTION, FAST_DING, dingtalk_settings
from tests.fakes.dingtalk import GATEWAY, FakeDingTalk
from tests.fakes.model import FakeModel

APP = "ding-app-1"


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk({APP: "ding-secret-1"}) as fake:
        yield fake


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


async def test_ping_is_echoed_and_disconnect_opens_the_new_socket_before_closing_the_old(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING):
        first = await ding.wait_connected(APP)
        ping = await ding.ping()
        assert ding.acks[ping] == {"code": 200, "headers": {"contentType": "application/json", "messageId": ping},
                                   "message": "OK", "data": '{"opaque": "123-dsfs"}'}  # fmt: skip
        await ding.disconnect()
        second = await ding.wait_connected(APP, count=2)
        await ding.wait_for(lambda: first.closed_at < float("inf"), what="the old socket closed")
        assert second.opened_at < first.closed_at
        await ding.push(ding.message("新连接", user="u1"))  # the new socket delivers
        await ding.wait_for(lambda: ding.texts(user="u1") == ["echo: 新连接"], what="the answer")
        assert len(ding.requests_to(GATEWAY)) == 2


async def test_an_abrupt_close_reconnects_and_delivery_goes_on(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING) as daemon:
        await ding.wait_connected(APP)
        await ding.abort()
        await ding.wait_connected(APP, count=2)
        await ding.push(ding.message("断线之后", user="u2"))
        await ding.wait_for(lambda: ding.texts(user="u2") == ["echo: 断线之后"], what="the answer")
        assert daemon.services is not None
        (status,) = daemon.services.operator.channel_states()
        assert status.up and status.reconnects == 1 and status.detail["apps"][APP]["reconnects"] == 1


async def test_a_server_that_closes_every_socket_is_retried_at_growing_delays(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    ding.close_on_connect = True  # a clean close right away: the old SDK's hot loop
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING):
        await ding.wait_for(lambda: len(ding.opens) >= 6, what="six opens")
    times = [t for t, _, _ in ding.opens][:6]
    delays = gaps(times)
    assert all(d >= CONNECTION.first_backoff * 0.8 * 0.9 for d in delays), delays
    assert delays[3] >= CONNECTION.first_backoff * 2**3 * 0.8, delays  # doubling: the 4th waits ≥ 8 × the first
    assert max(delays) <= CONNECTION.max_backoff * 2 * 1.2 + 0.5, delays  # capped at 2 × max_backoff


async def test_refused_credentials_are_reported_once_and_retried_at_growing_delays(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    ding.auth_fail = True
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING) as daemon:
        await ding.wait_for(lambda: len(ding.opens) >= 5, what="five refused opens")
        assert daemon.services is not None
        (status,) = daemon.services.operator.channel_states()
        assert not status.up and "authFailed" in str(status.last_error)
        errors = [e for e in daemon.services.bus.recent_errors if e.data.get("source") == "dingtalk"]
        assert len(errors) == 1 and "Stream 模式" in errors[0].data["hint"]
        ding.auth_fail = False  # fixed in the console: it connects by itself
        await ding.wait_connected(APP)
        await ding.push(ding.message("修好了", user="u3"))
        await ding.wait_for(lambda: ding.texts(user="u3") == ["echo: 修好了"], what="the answer")
    delays = gaps([t for t, _, status in ding.opens if status == 401][:5])
    assert delays[3] >= CONNECTION.first_backoff * 2**3 * 0.8, delays  # growing, whatever the machine's load
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR and "authFailed" in r.getMessage()]
    assert len(logged) == 1
    warned = [r for r in caplog.records if r.levelno == logging.WARNING and "authFailed" in r.getMessage()]
    assert len(warned) == 1  # five refusals, one warning: the same reason is not repeated
    assert "ding-secret-1" not in caplog.text


async def test_a_silent_socket_is_replaced_by_the_idle_watchdog(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    quiet = replace(FAST_DING, connection=replace(CONNECTION, idle_timeout=0.3))
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), quiet):
        await ding.wait_connected(APP, count=3)
        first, second = ding.connections[:2]
        await ding.wait_for(lambda: first.closed_at < float("inf"), what="the silent socket closed")
        assert second.opened_at < first.closed_at  # replaced without a gap
    assert len(ding.requests_to(GATEWAY)) >= 3


async def test_events_are_acked_as_success_and_other_callbacks_as_not_implemented(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING):
        await ding.wait_connected(APP)
        event = await ding.frame("EVENT", "chat_update_title", {"title": "新群名"})
        card = await ding.frame("CALLBACK", "/v1.0/card/instances/callback", {"outTrackId": "x"})
        await ding.wait_for(lambda: event in ding.acks and card in ding.acks, what="both ACKs")
    assert ding.acks[event]["code"] == 200
    assert json.loads(ding.acks[event]["data"]) == {"status": "SUCCESS", "message": "success"}
    assert ding.acks[card]["code"] == 404
    assert model.requests == [] and ding.delivered == []


async def test_stop_closes_the_socket_cleanly(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> None:
    runner = DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING)
    async with runner:
        conn = await ding.wait_connected(APP)
    await ding.wait_for(lambda: conn.closed, what="the socket closed")
    assert conn.ws.close_code == 1000
    assert len(ding.requests_to(GATEWAY)) == 1


def test_the_backoff_is_capped_at_twice_the_policys() -> None:
    policy = ConnectionPolicy()
    assert policy.max_backoff * BACKOFF_SCALE == 60.0  # DingTalk's SDKs' cap
