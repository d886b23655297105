"""A burst of colleagues asking at once is answered at the model's pace: every question is put to the model at
the same time (up to `max_concurrent_answers`), and past that limit the rest wait their turn and are all answered."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

PEOPLE = 60


async def burst(daemon: DaemonRunner, first_id: int) -> None:
    await asyncio.gather(*(daemon.ask(f"user{n}", f"问题{n}", first_id + n) for n in range(PEOPLE)))


async def test_a_burst_is_put_to_the_model_all_at_once(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    model.set_delay(0.5)  # a slow model: what limits the pace must be the model, not the daemon
    async with DaemonRunner(make_settings(tmp_path, wecom, model)) as daemon:
        await burst(daemon, 70_000)
        await wecom.wait_for_sent(PEOPLE, timeout=30)
    assert model.peak_in_flight == PEOPLE  # the default limit (500) does not hold anyone back
    assert sorted(m["touser"] for m in wecom.sent) == sorted(f"user{n}" for n in range(PEOPLE))


async def test_past_the_limit_the_rest_wait_their_turn(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    model.set_delay(0.1)
    settings = make_settings(tmp_path, wecom, model, max_concurrent_answers=8)
    async with DaemonRunner(settings) as daemon:
        await burst(daemon, 80_000)
        await wecom.wait_for_sent(PEOPLE, timeout=30)
    assert model.peak_in_flight == 8
    assert len({m["touser"] for m in wecom.sent}) == PEOPLE  # nobody left out, nobody answered twice
    assert len(wecom.sent) == PEOPLE
