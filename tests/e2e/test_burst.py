"""A burst of colleagues asking at once is answered at the model's pace: every question is put to the model at
the same time (up to `max_concurrent_answers`), and past that limit the rest wait their turn and are all answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.model import FakeModel, ModelRequest
from tests.fakes.wecom import FakeWeCom

PEOPLE = 60


async def burst(daemon: DaemonRunner, first_id: int) -> None:
    await asyncio.gather(*(daemon.ask(f"user{n}", f"问题{n}", first_id + n) for n in range(PEOPLE)))


def hold_answers_until(model: FakeModel, in_flight: int) -> None:
    """The model answers nothing until `in_flight` questions are with it at once (then everything, at once): a
    daemon that let fewer through would never see an answer."""
    released = asyncio.Event()

    async def held(request: ModelRequest) -> str:
        if model.in_flight >= in_flight:
            released.set()
        await released.wait()
        return f"echo: {request.last_user_text}"

    model.set_reply(held)


async def test_a_burst_is_put_to_the_model_all_at_once(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    hold_answers_until(model, PEOPLE)  # a slow model: what limits the pace must be the model, not the daemon
    async with DaemonRunner(make_settings(tmp_path, wecom, model)) as daemon:
        await burst(daemon, 70_000)
        await wecom.wait_for_sent(PEOPLE, timeout=30)
    assert model.peak_in_flight == PEOPLE  # the default limit (500) does not hold anyone back
    assert sorted(m["touser"] for m in wecom.sent) == sorted(f"user{n}" for n in range(PEOPLE))


async def test_past_the_limit_the_rest_wait_their_turn(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    hold_answers_until(model, 8)
    settings = make_settings(tmp_path, wecom, model, max_concurrent_answers=8)
    async with DaemonRunner(settings) as daemon:
        await burst(daemon, 80_000)
        await wecom.wait_for_sent(PEOPLE, timeout=30)
    assert model.peak_in_flight == 8
    assert len({m["touser"] for m in wecom.sent}) == PEOPLE  # nobody left out, nobody answered twice
    assert len(wecom.sent) == PEOPLE


async def test_a_rate_limit_during_a_burst_is_waited_out_not_apologised_for(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    model.retry_after_ms = 300.0
    model.fail(429, times=3)  # the first three questions meet the provider's limit
    async with DaemonRunner(make_settings(tmp_path, wecom, model)) as daemon:
        await burst(daemon, 90_000)
        await wecom.wait_for_sent(PEOPLE, timeout=30)
    texts = [m[m["msgtype"]]["content"] for m in wecom.sent]
    assert len(texts) == PEOPLE and all(t.startswith("echo: 问题") for t in texts), "everyone answered, no apology"
    assert len(model.requests) == PEOPLE + 3
