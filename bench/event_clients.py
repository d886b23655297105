"""Live-event clients that never read: how many the daemon takes, and what they cost it.

Run from the repository root: ``.venv/bin/python bench/event_clients.py``. Not a test: it prints figures and
exits 0 (1 only when it could not run).

It starts FakeWeCom and FakeModel (an instant echo) in this process and the daemon as a child process
(``python -m chatgpt_wecom run``, data in a temp dir, everything on 127.0.0.1), then:

1. warms up with one playground message and reads the daemon's RSS (``/proc/<pid>/status``);
2. opens ``--clients`` connections to ``GET /v1/events`` that never read a byte, and counts the answers:
   200 (subscribed) or 503 ``too_many_clients`` (refused);
3. sends ``--messages`` playground messages of ``--chars`` characters each (every one publishes a handful of
   events carrying up to 2,000 characters of text) and waits until the pipeline is idle;
4. reads the RSS again. The growth, divided by the subscribed clients, is what a stuck client costs the daemon's
   memory (the kernel's socket buffers come on top and are not in the RSS).
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient
from tests.daemon_runner import AGENT_ID, SOCKETS, DaemonProcess, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_CORP_ID


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


async def idle(client: ControlClient) -> None:
    """Until nothing is queued or unfinished (the caller bounds the wait)."""
    while True:
        status = await client.status()
        if status.queue_depth == 0 and status.open_messages == 0:
            return
        await asyncio.sleep(0.05)


async def amain(args: argparse.Namespace, workdir: Path) -> int:
    async with FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as wecom, FakeModel() as model:
        settings = make_settings(workdir, wecom, model)
        async with DaemonProcess(settings, workdir) as daemon, ControlClient(settings.socket_path) as client:
            assert daemon.proc is not None
            pid = daemon.proc.pid
            await client.playground("warmup", "hi")
            async with asyncio.timeout(args.timeout):
                await idle(client)
            before = rss_mib(pid)
            connector = aiohttp.UnixConnector(path=str(settings.socket_path), limit=0)
            async with aiohttp.ClientSession(connector=connector) as http:
                answers = [await http.get(f"http://daemon{p.API}/events") for _ in range(args.clients)]
                accepted = sum(r.status == 200 for r in answers)
                refused = [r for r in answers if r.status == 503]
                said = (await refused[0].json())["error"] if refused else ""
                text = "长" * args.chars
                for n in range(args.messages):
                    await client.playground(f"u{n % 10}", f"{n} {text}")
                async with asyncio.timeout(args.timeout):
                    await idle(client)
                after = rss_mib(pid)
                for r in answers:
                    r.close()
    print(f"clients asked: {args.clients}  subscribed: {accepted}  refused (503): {len(refused)}")
    if said:
        print(f"refusal: {said}")
    print(f"messages: {args.messages} of {args.chars} characters")
    print(f"daemon RSS: {before:.1f} MiB → {after:.1f} MiB (+{after - before:.1f} MiB)")
    if accepted:
        print(f"per subscribed client that never reads: {(after - before) / accepted:.2f} MiB")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clients", type=int, default=100)
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--chars", type=int, default=2000)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="cw-bench-events-"))
    try:
        return asyncio.run(amain(args, workdir))
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        shutil.rmtree(SOCKETS, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
