"""Catching up on the event stream: `GET /v1/events?since=N&boot=B` replays what a client missed, then goes live."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient, ControlError, resumed
from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.events import BACKLOG, EventBus
from tests.daemon_runner import DaemonRunner


class Stream:
    """One client's stream opened with `since`, read in the background."""

    def __init__(self, client: ControlClient, since: int, boot: str | None) -> None:
        self.events: asyncio.Queue[p.Event] = asyncio.Queue()
        self.opened = asyncio.Event()
        self._source: AsyncIterator[p.Event] = client.events(on_open=self.opened.set, since=since, boot=boot)
        self._task = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for event in self._source:
            await self.events.put(event)

    async def head(self) -> p.StreamResumed:
        info = resumed(await asyncio.wait_for(self.events.get(), 10))
        assert info is not None, "the first event says what is replayed"
        return info

    async def take(self, count: int) -> list[p.Event]:
        return [await asyncio.wait_for(self.events.get(), 10) for _ in range(count)]

    async def close(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def bus_of(daemon: DaemonRunner) -> EventBus:
    assert daemon.services is not None
    return daemon.services.bus


async def test_missed_events_are_replayed_in_order_then_live_ones_follow(daemon: DaemonRunner) -> None:
    bus = bus_of(daemon)
    async with ControlClient(daemon.settings.socket_path) as client:
        status = await client.status()
        assert (status.boot, status.last_event) == (bus.boot, bus.last_seq)
        await daemon.say("alice", "asked while the client was away")  # a whole answer's worth of events
        missed = [e for e in bus.backlog if e.seq > status.last_event]
        assert {"message.received", "reply.stored", "message.done"} <= {e.kind for e in missed}

        stream = Stream(client, status.last_event, status.boot)
        try:
            info = await stream.head()
            assert info == p.StreamResumed(boot=bus.boot, since=status.last_event, replayed=len(missed))
            replayed = await stream.take(len(missed))
            assert [(e.seq, e.kind, e.data["inbox_id"]) for e in replayed] == [
                (e.seq, e.kind, e.data["inbox_id"]) for e in missed
            ]
            await daemon.say("bob", "asked while it follows")
            live = await stream.take(bus.last_seq - missed[-1].seq)
            assert [e.seq for e in live] == list(range(missed[-1].seq + 1, bus.last_seq + 1))
            assert {e.data.get("user") for e in live} == {"bob"}
        finally:
            await stream.close()


async def test_no_gap_and_no_duplicate_at_the_seam_while_events_pour_in(daemon: DaemonRunner) -> None:
    bus = bus_of(daemon)
    since = bus.last_seq
    published = 0

    async def pour() -> None:  # events keep coming before, while and after the stream opens
        nonlocal published
        while True:
            bus.publish("test.tick", n=published)
            published += 1
            await asyncio.sleep(0)

    pouring = asyncio.create_task(pour())
    async with ControlClient(daemon.settings.socket_path) as client:
        stream = Stream(client, since, bus.boot)
        try:
            info = await stream.head()
            assert info.since == since and info.lost == 0 and not info.restarted
            got = await stream.take(info.replayed + 200)  # the replay, then 200 live ones
            assert stream.opened.is_set()
        finally:
            pouring.cancel()
            await stream.close()
    assert info.replayed > 0  # some came before the stream opened: replayed
    assert [e.seq for e in got] == list(range(since + 1, since + 1 + len(got)))  # each once, in order
    assert [e.data["n"] for e in got] == list(range(len(got)))


async def test_a_since_older_than_the_backlog_says_how_many_were_lost(daemon: DaemonRunner) -> None:
    bus = bus_of(daemon)
    since = bus.last_seq
    for n in range(BACKLOG + 150):
        bus.publish("test.tick", n=n)
    async with ControlClient(daemon.settings.socket_path) as client:
        stream = Stream(client, since, bus.boot)
        try:
            info = await stream.head()
            assert (info.lost, info.replayed, info.restarted) == (150, BACKLOG, False)
            first, *_ = await stream.take(BACKLOG)
            assert first.seq == since + 151 and first.data["n"] == 150  # the oldest kept one
        finally:
            await stream.close()


async def test_a_restarted_daemon_is_detected_and_replays_its_own_numbering(settings: Settings) -> None:
    async with DaemonRunner(settings) as first:
        await first.say("alice", "before the restart")
        await first.say("alice", "and once more")
        old = bus_of(first)
        old_boot, old_last = old.boot, old.last_seq
    async with DaemonRunner(settings) as second:
        await second.say("alice", "after the restart")
        new = bus_of(second)
        assert new.boot != old_boot
        assert new.last_seq < old_last  # the ordinary case: a number from before means nothing here
        async with ControlClient(settings.socket_path) as client:
            stream = Stream(client, old_last, old_boot)
            try:
                info = await stream.head()
                assert info == p.StreamResumed(boot=new.boot, since=0, replayed=new.last_seq, restarted=True)
                replayed = await stream.take(new.last_seq)
                assert [e.seq for e in replayed] == list(range(1, new.last_seq + 1))
                assert any(e.data.get("text") == "after the restart" for e in replayed)
            finally:
                await stream.close()
            # Also without a boot: a number past this run's newest can only be from another run.
            stream = Stream(client, new.last_seq + 5, None)
            try:
                assert (await stream.head()).restarted
            finally:
                await stream.close()


async def test_a_stream_without_since_is_live_only_and_a_bad_since_is_refused(daemon: DaemonRunner) -> None:
    bus = bus_of(daemon)
    bus.publish("test.tick", n=0)
    async with ControlClient(daemon.settings.socket_path) as client:
        opened = asyncio.Event()

        async def first_live() -> p.Event:
            async for event in client.events(on_open=opened.set):
                return event
            raise AssertionError("the stream ended")

        first = asyncio.create_task(first_live())
        await asyncio.wait_for(opened.wait(), 10)
        bus.publish("test.tick", n=1)
        event = await asyncio.wait_for(first, 10)
        assert (event.kind, event.data, event.seq) == ("test.tick", {"n": 1}, bus.last_seq)  # no replay, no head
        with pytest.raises(ControlError) as refused:
            await anext(client.events(since=-1))
        assert (refused.value.status, refused.value.code) == (400, "bad_request")
