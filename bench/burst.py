"""A burst of colleagues at 9:00: how long until the last one is answered, against the model's own latency?

Run from the repository root: ``.venv/bin/python bench/burst.py`` (``--help`` for the knobs). Not a test: it prints
figures and exits 0. Everything is on 127.0.0.1: FakeWeCom and a FakeModel that answers every question after
``--latency`` seconds run in this process; the daemon runs as ``python -m chatgpt_wecom run`` so that its CPU time
and memory are its own (read from /proc).

For each ``max_concurrent_answers`` in ``--limits`` (32 was the fixed limit before it became a key): send
``--people`` signed callbacks at once (one question each, from different people), wait until every answer reached
FakeWeCom, and report the time to the last answer (and its ratio to the model's latency), the most answers the
model saw at once, the daemon's CPU seconds per answer, and its resident memory at the peak per answer in flight.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp

from chatgpt_wecom.demo.ports import unused_port
from tests.daemon_runner import AGENT_ID, DaemonProcess, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner, SignedRequest

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def one_run(people: int, latency: float, limit: int, workdir: Path) -> dict[str, float]:
    async with FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as wecom, FakeModel() as model:
        model.set_delay(latency)
        settings = make_settings(workdir, wecom, model, port=unused_port(), max_concurrent_answers=limit)
        signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, str(AGENT_ID))
        async with DaemonProcess(settings, workdir) as daemon, aiohttp.ClientSession() as http:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            idle_rss = rss_kib(pid)
            cpu_before = cpu_seconds(pid)
            requests = [signer.text(f"p{n}", f"问题{n}", 900_000 + n) for n in range(people)]

            async def post(req: SignedRequest) -> None:
                async with http.post(f"{daemon.url}/ai/callback", params=req.query, data=req.body) as resp:
                    assert resp.status == 200

            started = time.monotonic()
            await asyncio.gather(*(post(r) for r in requests))
            peak_rss = idle_rss
            while len(wecom.sent) < people:
                peak_rss = max(peak_rss, rss_kib(pid))
                await asyncio.sleep(0.05)
                if time.monotonic() - started > 60 + 4 * latency * people / limit:
                    break
            last = time.monotonic() - started
            cpu = cpu_seconds(pid) - cpu_before
        peak = model.peak_in_flight
        return {
            "answered": len(wecom.sent), "last": last, "ratio": last / latency if latency else 0.0,
            "peak": peak, "cpu_ms": 1000 * cpu / max(1, people),
            "kib_per_answer": (peak_rss - idle_rss) / max(1, peak),
        }  # fmt: skip


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=200, help="questions sent at once (default 200)")
    parser.add_argument("--latency", type=float, default=2.0, help="seconds the model takes per answer (default 2)")
    parser.add_argument("--limits", default="32,500", help="max_concurrent_answers values to compare (default 32,500)")
    args = parser.parse_args()
    print(f"{args.people} questions at once; the model answers each after {args.latency:g} s")
    print(f"{'max_concurrent':>14} {'answered':>8} {'last answer':>12} {'× latency':>10} {'peak at model':>13}"
          f" {'CPU/answer':>11} {'RSS/answer':>11}")  # fmt: skip
    for limit in (int(v) for v in args.limits.split(",")):
        with tempfile.TemporaryDirectory(prefix="burst-") as tmp:
            r = await one_run(args.people, args.latency, limit, Path(tmp))
        print(f"{limit:>14} {r['answered']:>8.0f} {r['last']:>11.2f}s {r['ratio']:>10.2f} {r['peak']:>13.0f}"
              f" {r['cpu_ms']:>9.1f}ms {r['kib_per_answer']:>8.1f}KiB")  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
