"""The container: a start-up that fails part-way closes whatever it had already opened.

Each case breaks start-up with a real problem an operator can have (no stand-in for any project module) and
then looks for what would be left behind: a thread (the inbox writer's, aiosqlite's), a file descriptor on the
database, an aiohttp session or SQLite connection collected unclosed, a model client or a channel not closed.
"""

from __future__ import annotations

import asyncio
import gc
import os
import sqlite3
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Capabilities, Channel, MediaUnavailable, Outgoing
from chatgpt_wecom.daemon.services import Services
from chatgpt_wecom.daemon.store.db import UnusableDatabaseError
from chatgpt_wecom.daemon.store.private import database_files
from chatgpt_wecom.daemon.store.schema import MIGRATIONS
from tests.daemon_runner import FAST
from tests.fakes.waiting import wait_until


class Connection(Channel):
    """A connection channel of an embedder's own (defined here, in the test alone): it only remembers being stopped."""

    name = namespace = "connection"
    capabilities = Capabilities(
        text_limit=64, formats=frozenset({"text"}), streams_in_place=False, sends_unprompted=True,
        media_in=frozenset(), media_out=frozenset(),
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        self.stopped = False

    async def stop(self) -> None:
        self.stopped = True

    async def send(self, message: Outgoing) -> str | None:
        raise AssertionError("nothing is sent during a failed start-up")

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        raise MediaUnavailable("no media")


def descriptors_on(paths: list[Path]) -> list[str]:
    """The file descriptors of this process open on any of `paths`."""
    wanted = {str(p.resolve()) for p in paths}
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # closed while listing (the listing's own descriptor, for one)
            continue
        if target in wanted:
            found.append(f"{fd} -> {target}")
    return found


@contextmanager
def leak_watch() -> Iterator[list[str]]:
    """Collects what gets reported as left unclosed — ResourceWarnings and the loop's "Unclosed …" reports —
    including on a garbage collection at the end."""
    reports: list[str] = []
    loop = asyncio.get_running_loop()
    previous = loop.get_exception_handler()

    def handler(_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        reports.append(str(context.get("message")))

    loop.set_exception_handler(handler)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ResourceWarning)
            yield reports
            gc.collect()
        reports += [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    finally:
        loop.set_exception_handler(previous)


async def no_new_threads(before: set[threading.Thread]) -> None:
    """Wait until every thread started since `before` has ended (asyncio's own executor aside)."""

    def left() -> list[str]:
        return [t.name for t in threading.enumerate() if t not in before and not t.name.startswith("asyncio_")]

    try:
        await wait_until(lambda: not left(), timeout=5.0, what="threads to end")
    except AssertionError:
        raise AssertionError(f"threads left running: {left()}") from None


async def test_a_start_up_that_fails_half_way_closes_what_it_opened(settings: Settings) -> None:
    # A history-link key cut short (a full disk, a bad copy): the signer is built after the database, the inbox
    # writer, the HTTP session, the channels and the model client are open.
    connection = Connection()
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "history-link.key").write_bytes(b"short")
    threads = set(threading.enumerate())
    with leak_watch() as reports:
        services = Services(settings, FAST, extra_channels=[connection])
        with pytest.raises(ValueError, match=r"history-link\.key is damaged"):
            await services.open()
        assert services.http.closed and connection.stopped and services.model.closed  # it had got that far
        await no_new_threads(threads)  # the inbox writer's and aiosqlite's threads
        assert descriptors_on(database_files(settings.database_path)) == []
        del services
    assert reports == []
    with sqlite3.connect(settings.database_path) as conn:  # it had been opened and migrated, then closed
        assert conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


async def test_a_database_that_cannot_be_opened_leaves_nothing_open(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    settings.database_path.write_bytes(b"not a database, " * 512)  # e.g. another file restored in its place
    threads = set(threading.enumerate())
    with leak_watch() as reports:
        with pytest.raises(UnusableDatabaseError, match="is damaged or is not a database"):
            await Services(settings, FAST).open()
        await no_new_threads(threads)
        assert descriptors_on(database_files(settings.database_path)) == []
    assert reports == []
