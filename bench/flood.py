"""Slow-connection flood: do real callbacks still get through, and how big does the log get?

Run from the repository root: ``.venv/bin/python bench/flood.py`` (add ``--help`` for the knobs). Not a test: it
prints figures and exits 0 (1 only when it could not run at all). Everything is on 127.0.0.1.

1. Starts FakeWeCom and FakeModel in this process, and the daemon as ``python -m chatgpt_wecom run`` with its
   RLIMIT_NOFILE (soft and hard) set to ``--nofile`` — what systemd's ``LimitNOFILE=`` does.
2. Opens ``--slow`` attacking connections and keeps that many open for ``--seconds``: each sends part of a
   request and then a few more bytes every ``--drip`` seconds, never finishing. ``--mode headers`` stalls in
   the headers (slowloris), ``body`` sends complete headers and drips the body, ``idle`` connects and sends
   nothing, ``mix`` does all three. A connection the daemon closes is opened again at once.
3. Meanwhile sends ``--callbacks`` real signed callbacks, evenly spread, each on a new connection with WeCom's
   5 s timeout, and counts those acked with ``200 ""`` in time, then (after the flood) those answered.
4. Stops the daemon and reports its log: bytes, lines, tracebacks and its three most frequent kinds of line
   (``FLOOD_LOG_LEVEL=debug`` in the environment sets the daemon's log_level).
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp

from tests.daemon_runner import AGENT_ID, DaemonProcess, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner

WECOM_TIMEOUT = 5.0  # WeCom waits this long for the ack, then retries


@dataclass
class Attack:
    opened: int = 0  # connections the attacker got (connect() returned)
    cut: int = 0  # connections the daemon closed
    connect_failures: int = 0


@dataclass
class Callbacks:
    latencies: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    outcomes: str = ""  # one character per callback, in order: "+" acked in time, "-" not
    peak_fds: int = 0  # the most descriptors the daemon had open when a callback was sent


def _opening(mode: str, n: int, port: int) -> bytes:
    kind = mode if mode != "mix" else ("headers", "body", "idle")[n % 3]
    line = f"POST /ai/callback?msg_signature=0&timestamp={n}&nonce={n} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
    if kind == "headers":
        return line.encode()
    if kind == "body":
        return f"{line}Content-Length: 60000\r\n\r\n<xml>".encode()
    return b""


async def _slow_connection(n: int, args: argparse.Namespace, port: int, until: float, attack: Attack) -> None:
    """One attacking slot: a stalled request, re-opened whenever the daemon closes it."""
    while time.monotonic() < until:
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2.0)
        except (OSError, TimeoutError):
            attack.connect_failures += 1
            await asyncio.sleep(0.2)
            continue
        attack.opened += 1
        opening = _opening(args.mode, n, port)
        try:
            writer.write(opening)
            while time.monotonic() < until:
                with contextlib.suppress(TimeoutError):
                    if not await asyncio.wait_for(reader.read(4096), args.drip):
                        break  # the daemon closed it
                if opening:
                    writer.write(b"X-Slow: a\r\n" if b"\r\n\r\n" not in opening else b"a")
                    await writer.drain()
            else:
                continue
            attack.cut += 1
        except OSError:
            attack.cut += 1
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


def _open_fds(pid: int) -> int:
    try:
        return len(os.listdir(f"/proc/{pid}/fd"))
    except OSError:
        return 0


async def _callbacks(url: str, pid: int, count: int, spread: float, result: Callbacks) -> None:
    """`count` callbacks, one every `spread / count` seconds whether or not the previous one was acked."""
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, str(AGENT_ID))
    timeout = aiohttp.ClientTimeout(total=WECOM_TIMEOUT)
    outcomes = ["?"] * count

    async def one(i: int, http: aiohttp.ClientSession) -> None:
        await asyncio.sleep(i * spread / count)
        req = signer.text(f"user{i}", f"flood {i}", 7_000_000 + i)
        result.peak_fds = max(result.peak_fds, _open_fds(pid))
        t0 = time.monotonic()
        try:
            async with http.post(f"{url}/ai/callback", params=req.query, data=req.body) as resp:
                status, text = resp.status, await resp.text()
        except (aiohttp.ClientError, TimeoutError) as exc:
            status, text = -1, type(exc).__name__
        if (status, text) == (200, ""):
            result.latencies.append(time.monotonic() - t0)
            outcomes[i] = "+"
        else:
            result.failures.append(f"{status} {text[:80]}")
            outcomes[i] = "-"

    connector = aiohttp.TCPConnector(force_close=True, limit=0)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        await asyncio.gather(*(one(i, http) for i in range(count)))
    result.outcomes = "".join(outcomes)


async def run(args: argparse.Namespace, workdir: Path) -> None:
    async with FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as wecom, FakeModel() as model:
        settings = make_settings(workdir, wecom, model, log_level=os.environ.get("FLOOD_LOG_LEVEL", "info"))
        daemon = DaemonProcess(settings, workdir, nofile=args.nofile)
        await daemon.start()
        try:
            port = settings.port
            attack, callbacks = Attack(), Callbacks()
            until = time.monotonic() + args.seconds
            slow = [asyncio.create_task(_slow_connection(n, args, port, until, attack)) for n in range(args.slow)]
            await asyncio.sleep(args.ramp)  # let the flood fill the slots first
            assert daemon.proc is not None
            await _callbacks(
                daemon.url,
                daemon.proc.pid,
                args.callbacks,
                max(0.0, args.seconds - args.ramp - WECOM_TIMEOUT),
                callbacks,
            )
            await asyncio.gather(*slow)
            acked = len(callbacks.latencies)
            with contextlib.suppress(AssertionError):
                await wecom.wait_for(lambda: len(wecom.sent) >= acked, timeout=15.0)
            answered = len(wecom.sent)
            code = await daemon.terminate()
        finally:
            await daemon.ensure_stopped()
        log = daemon.log_path.read_bytes()
        lat = sorted(callbacks.latencies)
        print(f"flood: {args.slow} {args.mode} connections for {args.seconds:g} s, daemon RLIMIT_NOFILE {args.nofile}")
        print(f"  attacker: {attack.opened} connections opened, {attack.cut} closed by the daemon, "
              f"{attack.connect_failures} connect failures")  # fmt: skip
        print(f"  callbacks acked within {WECOM_TIMEOUT:g} s: {acked}/{args.callbacks} ({callbacks.outcomes}); "
              f"answered: {answered}; daemon's open descriptors: up to {callbacks.peak_fds}")  # fmt: skip
        if lat:
            print(f"  ack latency: median {lat[len(lat) // 2] * 1000:.0f} ms, max {lat[-1] * 1000:.0f} ms")
        if callbacks.failures:
            print(f"  first failures: {callbacks.failures[:3]}")
        lines, tracebacks = log.count(b"\n"), log.count(b"Traceback")
        print(f"  daemon log: {len(log):,} bytes, {lines:,} lines, {tracebacks:,} tracebacks")
        print(f"  exit code after SIGTERM: {code}")
        heads = collections.Counter(
            re.sub(r"\d+", "N", line.split(" ", 2)[2])[:110]
            for line in log.decode(errors="replace").splitlines()
            if re.match(r"\d{4}-\d\d-\d\d ", line)
        )
        for head, n in heads.most_common(3):
            print(f"  {n:>8,} × {head}")
        if args.show_log:
            print(log.decode(errors="replace")[-args.show_log :])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--nofile", type=int, default=256, help="the daemon's RLIMIT_NOFILE (default 256)")
    parser.add_argument("--slow", type=int, default=300, help="attacking connections kept open (default 300)")
    parser.add_argument("--mode", choices=("headers", "body", "idle", "mix"), default="headers")
    parser.add_argument("--drip", type=float, default=1.0, help="seconds between an attacker's bytes")
    parser.add_argument(
        "--seconds", type=float, default=20.0, help="how long the flood lasts (callbacks end 5 s before)"
    )
    parser.add_argument("--ramp", type=float, default=2.0, help="seconds of flood before the first callback")
    parser.add_argument("--callbacks", type=int, default=20, help="real callbacks sent during the flood")
    parser.add_argument("--show-log", type=int, default=0, metavar="BYTES", help="print the log's last BYTES")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="cw-flood-") as tmp:
        try:
            asyncio.run(run(args, Path(tmp)))
        except (OSError, RuntimeError, AssertionError) as exc:
            print(f"flood: could not run: {exc}", file=sys.stderr)
            sys.exit(1)


if __name__ == "__main__":
    main()
