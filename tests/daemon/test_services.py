"""The container: a start-up that fails part-way closes whatever it had already opened.

Each case breaks start-up with a real problem an operator can have (no stand-in for any project module) and
then looks from outside for what would be left behind: a thread (the inbox writer's, aiosqlite's), a file
descriptor on the database, an aiohttp session or SQLite connection collected unclosed.
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
from chatgpt_wecom.daemon.services import Services
from chatgpt_wecom.daemon.store.private import database_files
from tests.daemon_runner import FAST, wait_until


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


async def test_a_database_that_cannot_be_opened_leaves_nothing_open(settings: Settings) -> None:
    settings.data_dir.mkdir(parents=True)
    settings.database_path.write_bytes(b"not a database, " * 512)  # e.g. another file restored in its place
    threads = set(threading.enumerate())
    with leak_watch() as reports:
        with pytest.raises(sqlite3.DatabaseError):
            await Services(settings, FAST).open()
        await no_new_threads(threads)
        assert descriptors_on(database_files(settings.database_path)) == []
    assert reports == []
