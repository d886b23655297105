"""The access-token cache both API clients use: one fetch for many callers, due early, a refusal remembered."""

from __future__ import annotations

import asyncio

import pytest

from chatgpt_wecom.daemon.channels.access_token import AccessToken


class Refused(Exception):
    pass


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_concurrent_callers_share_one_fetch_and_the_token_is_due_five_minutes_early() -> None:
    clock, fetches = Clock(), []
    cache = AccessToken(clock, cooldown=60.0)

    async def fetch() -> tuple[str, float]:
        fetches.append(clock.now)
        await asyncio.sleep(0)  # let the other callers queue behind this fetch
        return f"tok{len(fetches)}", 7200.0

    assert await asyncio.gather(*(cache.get(fetch) for _ in range(5))) == ["tok1"] * 5
    assert len(fetches) == 1 and cache.remaining() == 7200.0
    clock.now += 7200 - 300 - 1
    assert await cache.get(fetch) == "tok1"
    clock.now += 1
    assert await cache.get(fetch) == "tok2"


async def test_a_short_lived_token_is_due_halfway_and_a_dropped_one_is_fetched_again() -> None:
    clock, count = Clock(), [0]
    cache = AccessToken(clock, cooldown=60.0)

    async def fetch() -> tuple[str, float]:
        count[0] += 1
        return f"tok{count[0]}", 600.0

    assert await cache.get(fetch) == "tok1"
    clock.now += 299
    assert await cache.get(fetch) == "tok1"
    clock.now += 1
    assert await cache.get(fetch) == "tok2"
    cache.drop("tok1")  # an older token the vendor refused: the newer one stays
    assert await cache.get(fetch) == "tok2"
    cache.drop("tok2")
    assert cache.remaining() is None
    assert await cache.get(fetch) == "tok3"


async def test_a_refusal_is_raised_again_without_asking_until_the_cooldown_ends_or_it_is_forgotten() -> None:
    clock, asked = Clock(), [0]
    cache = AccessToken(clock, cooldown=60.0)

    async def fetch() -> tuple[str, float]:
        asked[0] += 1
        if asked[0] in (1, 2):
            cache.refused(lambda: Refused("wrong secret"))
            raise Refused("wrong secret")
        return "tok", 7200.0

    for _ in range(2):
        with pytest.raises(Refused):
            await cache.get(fetch)
    assert asked[0] == 1  # the second call was answered from memory
    clock.now += 60
    with pytest.raises(Refused):
        await cache.get(fetch)  # the cooldown is over: asked again, refused again
    assert asked[0] == 2
    cache.forget_refusal()  # the operator fixed it
    assert await cache.get(fetch) == "tok"
    assert asked[0] == 3
