"""A TCP port on 127.0.0.1 for a server that binds it a moment later (the demo's daemon; the tests' daemons).

The usual trick — bind port 0, read the number, close — hands out a port from the kernel's ephemeral range,
the same range every outgoing connection takes its local port from. Between the pick and the server's bind,
any client on the machine can take it, and the server fails with "address already in use" (seen in CI, with
many test daemons and their HTTP clients on two cores). So the port is picked *below* the ephemeral range,
where the kernel never assigns one on its own: only another explicit bind can take it.

The processes that pick here (pytest's workers, a demo) must not take each other's ports either, even one a
test frees for a moment to restart its daemon on it. So the range is cut into blocks of `BLOCK` ports, and a
process walks only blocks it has claimed: an exclusive `flock` on the block's file under the temp folder, held
until the process ends (the kernel drops it then, however it ends). Within its blocks a process never hands out
a port twice, and gives one only if a bind to it succeeds (nobody listens there, no connection lingers in
TIME_WAIT). Where the range cannot be read (not Linux) or no block is left, the kernel picks.
"""

from __future__ import annotations

import fcntl
import functools
import itertools
import os
import secrets
import socket
import tempfile
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

__all__ = ["BLOCK", "blocks", "claim", "first_bindable", "unused_port"]

LOWEST = 20000  # below this, ports are more likely to be some service's registered or configured one
BLOCK = 200  # ports a process claims at a time: a test worker uses a few hundred in a whole run
EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
CLAIMS = Path(tempfile.gettempdir()) / f"chatgpt-wecom-ports-{os.getuid()}"  # one lock file per claimed block
LOOPBACK = "127.0.0.1"

_lock = threading.Lock()
_held: list[int] = []  # the claimed blocks' lock files, open for the life of the process


def unused_port() -> int:
    """A port on 127.0.0.1 that nothing listens on now and that no outgoing connection will take."""
    with _lock:
        return first_bindable(itertools.islice(_candidates(), 1000))


def first_bindable(candidates: Iterable[int]) -> int:
    """The first of `candidates` a bind succeeds on; the kernel's pick when none does."""
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind((LOOPBACK, port))
            except OSError:
                continue
        return port
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def blocks(low: int, high: int) -> list[range]:
    """[low, high) cut into blocks of BLOCK ports (the last one may be shorter)."""
    return [range(start, min(start + BLOCK, high)) for start in range(low, high, BLOCK)]


@functools.cache
def _candidates() -> Iterator[int]:
    """This process's ports: every port of each block it claims, block after block as they run out."""
    return itertools.chain.from_iterable(_claimed(blocks(LOWEST, _ephemeral_start())))


def _claimed(choices: list[range]) -> Iterator[range]:
    """The blocks no other process holds, in random order (so that processes rarely try the same one first),
    each claimed as it is reached."""
    secrets.SystemRandom().shuffle(choices)
    return (block for block in choices if claim(block))


def claim(block: range) -> bool:
    """Lock `block`'s file without waiting, for the rest of this process's life; False when another process (or
    an earlier claim of this one) holds it. Without a place for the files the block is walked unclaimed (a bind
    still checks each port)."""
    try:
        CLAIMS.mkdir(mode=0o700, exist_ok=True)
        fd = os.open(CLAIMS / str(block.start), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False
    _held.append(fd)
    return True


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE.read_text(encoding="ascii").split()[0])
    except (OSError, ValueError, IndexError):
        return LOWEST  # no room: the kernel picks
