"""The dispatcher's lanes: per-user order, parallel users, and a stop that starts nothing new."""

from __future__ import annotations

import asyncio

from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.pipeline.dispatcher import Dispatcher


async def test_order_within_a_user_and_parallel_users() -> None:
    done: list[tuple[str, int]] = []
    gates = {n: asyncio.Event() for n in range(1, 5)}

    async def process(inbox_id: int) -> None:
        await gates[inbox_id].wait()
        done.append(("a" if inbox_id < 3 else "b", inbox_id))

    d = Dispatcher(process, EventBus(), concurrency=4)
    for user, n in (("a", 1), ("a", 2), ("b", 3), ("b", 4)):
        d.submit(user, n)
    gates[3].set()  # b's first finishes while a's first still runs: users are independent
    gates[4].set()
    gates[2].set()  # a's second may not overtake a's first
    await asyncio.sleep(0)
    gates[1].set()
    for _ in range(100):  # bounded: let both lanes run to the end
        if len(done) == 4:
            break
        await asyncio.sleep(0)
    await d.stop(grace=5)
    assert [n for u, n in done if u == "a"] == [1, 2]
    assert [n for u, n in done if u == "b"] == [3, 4]


async def test_stop_starts_no_new_message_even_for_a_lane_waiting_for_a_slot() -> None:
    started: list[int] = []
    first_started, release = asyncio.Event(), asyncio.Event()

    async def process(inbox_id: int) -> None:
        started.append(inbox_id)
        first_started.set()
        await release.wait()

    d = Dispatcher(process, EventBus(), concurrency=1)
    d.submit("a", 1)
    d.submit("b", 2)  # waits for the only slot
    await asyncio.wait_for(first_started.wait(), 5)
    stopping = asyncio.create_task(d.stop(grace=5))
    await asyncio.sleep(0)
    release.set()
    await stopping
    assert started == [1]  # message 2 stays in the inbox for the next start
    assert d.depth == 0
