"""The port a test (or the demo) gives a daemon: below the ephemeral range, never twice, never one in use,
never one of a block another process has claimed."""

from __future__ import annotations

import asyncio
import socket
import sys

from chatgpt_wecom.demo.ports import BLOCK, EPHEMERAL_RANGE, LOWEST, blocks, claim, first_bindable, unused_port


def ephemeral_start() -> int:
    return int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])  # Linux, as CI and deployments


def test_ports_come_from_below_the_range_outgoing_connections_take_theirs_from() -> None:
    picked = [unused_port() for _ in range(BLOCK + 10)]  # into a second block
    assert all(LOWEST <= port < ephemeral_start() for port in picked)
    assert len(set(picked)) == len(picked)  # never the same port twice in one process


async def test_a_block_another_process_holds_is_left_to_it_until_that_process_ends() -> None:
    other = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "import sys; from chatgpt_wecom.demo.ports import unused_port as u; print(u()); "
        "sys.stdin.read()", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert other.stdout is not None and other.stdin is not None
    try:
        theirs = int(await asyncio.wait_for(other.stdout.readline(), 30))
        (their_block,) = [b for b in blocks(LOWEST, ephemeral_start()) if theirs in b]
        assert not claim(their_block)
    finally:
        other.stdin.close()
        await other.wait()
    assert claim(their_block)  # the lock went with the process


def test_the_range_is_cut_into_blocks() -> None:
    assert blocks(100, 100 + 2 * BLOCK + 5) == [
        range(100, 100 + BLOCK),
        range(100 + BLOCK, 100 + 2 * BLOCK),
        range(100 + 2 * BLOCK, 100 + 2 * BLOCK + 5),
    ]
    assert blocks(100, 100) == []


def test_a_port_something_listens_on_is_passed_over() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        free = unused_port()
        assert first_bindable([busy, free]) == free


def test_when_no_candidate_is_free_the_kernel_picks() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert 0 < first_bindable([busy]) != busy
