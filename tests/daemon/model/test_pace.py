"""The provider's rate limit is met by waiting, for everyone at once (`model/pace.py`), against the fake model."""

from __future__ import annotations

import asyncio

import pytest

from chatgpt_wecom.daemon.model.base import ModelUnavailableError, RateLimitedError
from chatgpt_wecom.daemon.model.client import ModelClient
from chatgpt_wecom.daemon.model.pace import ProviderPace
from tests.fakes.model import FakeModel, error_body
from tests.fakes.waiting import wait_until

MESSAGES = [{"role": "user", "content": "hi"}]


def client_of(model: FakeModel, pace: ProviderPace | None = None) -> ModelClient:
    import openai

    sdk = openai.AsyncOpenAI(api_key="sk-test", base_url=model.base_url, max_retries=0)
    return ModelClient(sdk, "fake-model", endpoint="127.0.0.1", pace=pace)


async def test_a_429_holds_every_call_for_the_retry_after_then_all_go_on(model: FakeModel) -> None:
    model.retry_after_ms = 300.0
    model.fail(429, times=1)
    client = client_of(model)
    first = asyncio.create_task(client.complete(MESSAGES))
    await model.wait_for_requests(1)
    await wait_until(lambda: client.pace.blocked_for() > 0, what="the 429 holding the pace")
    others = [asyncio.create_task(client.complete([{"role": "user", "content": f"q{n}"}])) for n in range(4)]
    answers = await asyncio.gather(first, *others)
    assert [a.text for a in answers] == ["echo: hi", *(f"echo: q{n}" for n in range(4))]  # nobody got an error
    refused, *after = model.requests
    assert len(after) == 5 and all(r.at - refused.at >= 0.29 for r in after), "nobody called into the limit"
    await client.close()


async def test_without_retry_after_the_pause_grows_and_a_success_resets_it() -> None:
    now = [0.0]
    pace = ProviderPace(first=2.0, cap=10.0, clock=lambda: now[0])
    assert pace.hold(None) == 2.0
    now[0] += 2.0
    assert pace.hold(None) == 4.0
    now[0] += 4.0
    assert pace.hold(None) == 8.0 and pace.blocked_for() == 8.0
    now[0] += 8.0
    assert pace.hold(None) == 10.0  # capped
    pace.ok()
    now[0] += 10.0
    assert pace.hold(None) == 2.0
    assert pace.hold(99.0) == 10.0  # even a provider's Retry-After is capped: a minute-long hold is the most


async def test_a_call_gives_up_when_its_waits_would_pass_the_budget() -> None:
    pace = ProviderPace(budget=0.05)
    calls = 0

    async def limited() -> str:
        nonlocal calls
        calls += 1
        raise RateLimitedError("model endpoint x is rate limiting (HTTP 429)", 0.02)

    with pytest.raises(RateLimitedError):
        await pace.run(limited)
    assert calls == 3  # 0.02 + 0.02 waited, the third pause would pass 0.05


async def test_an_exhausted_quota_is_not_waited_for(model: FakeModel) -> None:
    model.fail(429, times=5, body=error_body("You exceeded your current quota", code="insufficient_quota"))
    client = client_of(model)
    with pytest.raises(ModelUnavailableError, match="out of quota") as err:
        await client.complete(MESSAGES)
    assert not isinstance(err.value, RateLimitedError) and len(model.requests) == 1
    assert client.pace.blocked_for() == 0
    await client.close()
