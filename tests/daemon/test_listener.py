"""The public listener's limits, on the real daemon over loopback with short timeouts: slow or idle clients are cut,
and at the connection cap the longest-idle connection makes room for a real callback."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest

from chatgpt_wecom.daemon.listener import ListenerLimits, connection_cap
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]
SHORT = ListenerLimits(header_timeout=0.5, body_timeout=0.5, keepalive_timeout=0.5, evict_after=0.05)


@pytest.fixture
async def opened() -> AsyncIterator[list[Conn]]:
    """Raw connections a test opens; all closed at the end."""
    conns: list[Conn] = []
    yield conns
    for _, writer in conns:
        writer.close()


async def _daemon(tmp_path: Path, wecom: FakeWeCom, model: FakeModel, limits: ListenerLimits) -> DaemonRunner:
    """The daemon with these limits; its own requests (readiness, callbacks) each on a new connection, like WeCom's,
    so that no keep-alive connection of the test's client takes a slot."""
    daemon = DaemonRunner(make_settings(tmp_path, wecom, model), dataclasses.replace(FAST, listener=limits))
    await daemon.http.close()
    daemon.http = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(force_close=True), headers={"Connection": "close"}
    )
    return await daemon.start()


async def _connect(daemon: DaemonRunner, opened: list[Conn], first: bytes) -> Conn:
    conn = await asyncio.open_connection("127.0.0.1", daemon.settings.port)
    conn[1].write(first)
    opened.append(conn)
    return conn


def _head(daemon: DaemonRunner, extra: str = "") -> bytes:
    """A callback POST's request line and headers (signature fields present, so the handler reads the body)."""
    return (
        f"POST /ai/callback?msg_signature=0&timestamp=1&nonce=1 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{daemon.settings.port}\r\n{extra}"
    ).encode()


async def _until_closed(conn: Conn, drip: bytes = b"", within: float = 5.0) -> tuple[float, bytes]:
    """Read (dripping `drip` every 50 ms) until the daemon closes the connection; seconds taken and bytes read."""
    reader, writer = conn
    started, received = time.monotonic(), b""
    while time.monotonic() - started < within:
        try:
            chunk = await asyncio.wait_for(reader.read(4096), 0.05)
        except TimeoutError:
            if drip:
                writer.write(drip)
            continue
        except ConnectionResetError:
            break
        if not chunk:
            break
        received += chunk
    else:
        raise AssertionError(f"still open after {within} s")
    return time.monotonic() - started, received


async def test_a_slow_drip_body_is_cut_without_an_error_in_the_log(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, opened: list[Conn], caplog: pytest.LogCaptureFixture
) -> None:
    daemon = await _daemon(tmp_path, wecom, model, SHORT)
    try:
        conn = await _connect(daemon, opened, _head(daemon, "Content-Length: 60000\r\n\r\n<xml>"))
        took, received = await _until_closed(conn, drip=b"a")  # 20 bytes a second: 50 minutes for the body
        assert 0.4 < took < 3.0
        assert received == b""  # cut, not answered
        # The handler reading the body found the client gone: not aiohttp's "Error handling request" traceback.
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
        await daemon.ask("u1", "之后的消息照常收到", next(MSG_IDS))
        await wecom.wait_for_sent(1, user="u1")
    finally:
        await daemon.stop()
        await daemon.http.close()


async def test_headers_not_complete_in_time_are_cut_even_if_bytes_keep_coming(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, opened: list[Conn]
) -> None:
    daemon = await _daemon(tmp_path, wecom, model, SHORT)
    try:
        conn = await _connect(daemon, opened, _head(daemon))
        took, received = await _until_closed(conn, drip=b"X-Slow: a\r\n")
        assert 0.4 < took < 3.0
        assert received == b""
    finally:
        await daemon.stop()
        await daemon.http.close()


async def test_an_idle_keepalive_connection_is_closed_and_a_busy_one_is_not(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, opened: list[Conn]
) -> None:
    daemon = await _daemon(tmp_path, wecom, model, SHORT)
    try:
        get = f"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:{daemon.settings.port}\r\n\r\n".encode()
        reader, writer = await _connect(daemon, opened, get)
        for request in range(1, 4):  # kept alive while used: each request well within the idle timeout
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
            assert head.startswith(b"HTTP/1.1 200"), head
            length = int(next(h for h in head.split(b"\r\n") if h.lower().startswith(b"content-length:")).split()[1])
            await reader.readexactly(length)
            if request < 3:
                await asyncio.sleep(0.1)  # a client's pause between requests, shorter than the idle timeout
                writer.write(get)
        took, received = await _until_closed((reader, writer))
        assert 0.4 < took < 3.0
        assert received == b""
    finally:
        await daemon.stop()
        await daemon.http.close()


async def test_at_the_cap_the_longest_idle_connection_makes_room_for_a_callback(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, opened: list[Conn]
) -> None:
    limits = dataclasses.replace(SHORT, header_timeout=30.0, max_connections=4)  # no deadline helps here
    daemon = await _daemon(tmp_path, wecom, model, limits)
    try:
        slow = [await _connect(daemon, opened, _head(daemon)) for _ in range(4)]  # every slot, stalled headers
        started = time.monotonic()
        await daemon.ask("u1", "连接满了也能进来", next(MSG_IDS))
        assert time.monotonic() - started < 3.0
        took, _ = await _until_closed(slow[0])  # the oldest stalled connection was the one closed for it
        assert took < 1.0
        await wecom.wait_for_sent(1, user="u1")
    finally:
        await daemon.stop()
        await daemon.http.close()


async def test_when_every_slot_has_a_request_in_progress_a_new_connection_waits_for_one(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, opened: list[Conn]
) -> None:
    # Slow bodies may not be replaced here (evict_after is long), so only their deadline frees a slot.
    limits = dataclasses.replace(SHORT, header_timeout=30.0, body_timeout=1.0, max_connections=2, evict_after=30.0)
    daemon = await _daemon(tmp_path, wecom, model, limits)
    try:
        for _ in range(2):
            await _connect(daemon, opened, _head(daemon, "Content-Length: 60000\r\n\r\n<xml>"))
        started = time.monotonic()
        await daemon.ask("u1", "排队等一个空位", next(MSG_IDS))  # queued by the kernel, not refused
        assert 0.5 < time.monotonic() - started < 4.0
        await wecom.wait_for_sent(1, user="u1")
    finally:
        await daemon.stop()
        await daemon.http.close()


def test_the_cap_keeps_a_reserve_of_descriptors() -> None:
    limits = ListenerLimits()
    assert connection_cap(limits, 65536) == 65536 - limits.reserve
    assert connection_cap(limits, 1024) == 1024 - limits.reserve
    assert connection_cap(limits, 256) == 128  # never more than half kept back
    assert connection_cap(dataclasses.replace(limits, max_connections=7), 65536) == 7
