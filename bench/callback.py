"""Callback benchmark: the real daemon against the stand-ins, next to a bare aiohttp handler.

Run from the repository root: ``.venv/bin/python bench/callback.py`` (or ``make bench``). Not a test: it prints
figures and exits 0 whether or not the targets are met (1 only when it could not run at all).

What it does, for the daemon and then for the bare handler (each a process of its own, on 127.0.0.1):

1. Daemon only: starts FakeWeCom and FakeModel (an instant fixed reply) in this process, then the daemon as
   ``python -m chatgpt_wecom run --config …`` with its data in a temp dir. The bare handler is this script
   re-run with ``--bare-server PORT``: it reads the body, parses the envelope, verifies the signature,
   decrypts and acks — nothing else.
2. Reads the idle RSS from ``/proc/<pid>/status`` once /healthz answers and the process has settled.
3. Pre-builds every signed, encrypted text callback (distinct MsgIds, spread over ``--users`` users) before
   any timing, so signing and encryption are not measured.
4. Sends, each time waiting until the daemon has delivered every answer so that it is idle again:
   ``--warmup`` callbacks (not counted); ``--single`` callbacks one at a time (the service time, no queueing);
   one burst of ``--concurrency`` callbacks at once; then the sustained run: ``--callbacks`` callbacks with
   exactly ``--concurrency`` in flight, each timed from send to its ``200 ""``. Answers per second are those
   callbacks divided by the time from the first send to FakeWeCom's acceptance of the last answer.

The load generator, FakeWeCom and FakeModel run in this process. On a machine with two CPUs or more each side gets
CPUs of its own (``--no-pin`` leaves them to the scheduler): this process the first one, the server under test —
every thread of it — the rest, here one. Left to share, the two took each other's cores at random moments, and the
same code measured 1,260 and 1,800 callbacks/s an hour apart. CPU used by other processes during the sustained run
is printed too.

With ``--model-delay`` the daemon's model timeouts are set past the delay (unless ``--set`` gives them): the tests'
20 s would give up on every held-back answer mid-run and retry it, putting model calls on the path being measured.

The two servers take turns for ``--rounds`` rounds (3), daemon then bare handler, and the table shows the round
with the median ratio, followed by one line per round: on a shared machine the bare handler alone has been seen at
2,657 and at 6,490 callbacks/s within the hour, so a ratio from one pair is a ratio of two moments.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

SCRIPT = Path(__file__).resolve()
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp
import yaml
from aiohttp import web
from yarl import URL

from chatgpt_wecom.daemon.channels.wecom.crypto import CryptoError, WeComCrypto
from chatgpt_wecom.daemon.channels.wecom.messages import MessageError, parse_envelope
from tests.daemon_runner import AGENT_ID, DaemonProcess, free_port, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner

REPLY = "好的，收到。"  # what the instant model answers: one short WeCom message per callback
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.7
TARGET_IDLE_RSS_MB = 100.0
SETTLE = 1.0  # seconds between "ready" and the idle RSS reading
PAUSE = 0.2  # seconds of quiet between the steps
REQUEST_TIMEOUT = 30.0  # per callback request; a hung server cannot stall a step past --time-cap + this

Prepared = tuple[URL, bytes]
Drained = Callable[[int], Awaitable[None]]  # wait until the answers to `n` more acked callbacks went out


# --- the bare baseline server -----------------------------------------------------------------------------------
def run_bare_server(port: int) -> None:
    """A minimal callback handler: read, parse the envelope, verify the signature, decrypt, ack. Nothing else."""
    crypto = WeComCrypto(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID)

    async def receive(request: web.Request) -> web.Response:
        q = request.query
        body = await request.read()
        try:
            envelope = parse_envelope(body)
            crypto.decrypt_message(
                q.get("msg_signature", ""), q.get("timestamp", ""), q.get("nonce", ""), envelope.encrypt
            )
        except (CryptoError, MessageError) as exc:
            return web.Response(status=403, text=str(exc))
        return web.Response(text="")

    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application(client_max_size=64 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/ai/callback", receive)
    web.run_app(app, host="127.0.0.1", port=port, access_log=None, print=None, handle_signals=True)


# --- /proc readings -----------------------------------------------------------------------------------------------
def proc_status_mib(pid: int, key: str) -> float:
    """A ``kB`` line of /proc/<pid>/status (VmRSS, VmHWM), in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def proc_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by a process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine spent busy so far (/proc/stat, every core)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values) - idle) / os.sysconf("SC_CLK_TCK")


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- CPU placement ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Which CPUs the load generator (this process) and the server under test run on."""

    load: frozenset[int]
    server: frozenset[int]

    def describe(self) -> str:
        return (
            f"load generator, FakeWeCom and FakeModel on CPU {_cpus(self.load)}, "
            f"the server under test on CPU {_cpus(self.server)}"
        )


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def placement(pin: bool) -> Placement | None:
    """The first usable CPU for the load generator, the others for the server; None unpinned or on one CPU."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return None
    return Placement(load=frozenset(cpus[:1]), server=frozenset(cpus[1:]))


def pin_process(pid: int, cpus: frozenset[int]) -> None:
    """Every thread `pid` has now onto `cpus`; threads it starts later inherit it from the thread that starts them."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(ProcessLookupError, FileNotFoundError):  # a thread that ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


# --- load generation ----------------------------------------------------------------------------------------------
def prepare(base_url: str, count: int, users: int, first_msg_id: int) -> list[Prepared]:
    """Signed, encrypted text callbacks as (URL, body), ready to send; built before any timing."""
    signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, str(AGENT_ID))
    out: list[Prepared] = []
    for i in range(count):
        msg_id = first_msg_id + i
        req = signer.text(f"bench-user-{i % users:03d}", f"问题 {msg_id}: 请简单回答。", msg_id)
        out.append((URL(f"{base_url}/ai/callback?{urlencode(req.query)}", encoded=True), req.body))
    return out


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful acks only
    errors: int = 0
    first_error: str = ""
    started: float = 0.0
    finished: float = 0.0
    cut_short: bool = False  # the time cap ended it before every callback was sent

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        elapsed = self.finished - self.started
        return self.ok / elapsed if elapsed > 0 else 0.0

    def quantile_ms(self, q: float) -> float:
        """Nearest-rank quantile of the ack latencies, in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000


async def fire(http: aiohttp.ClientSession, requests: Sequence[Prepared], concurrency: int, cap: float) -> LoadResult:
    """Send `requests` with `concurrency` in flight; take no new one after `cap` seconds."""
    result = LoadResult()
    pending = iter(requests)
    headers = {"Content-Type": "text/xml"}

    async def worker(deadline: float) -> None:
        for url, body in pending:  # the shared iterator hands each request to exactly one worker
            if time.monotonic() > deadline:
                result.cut_short = True
                return
            t0 = time.monotonic()
            try:
                async with http.post(url, data=body, headers=headers) as resp:
                    text = await resp.read()
                    status = resp.status
            except (aiohttp.ClientError, TimeoutError) as exc:
                status, text = -1, repr(exc).encode()
            elapsed = time.monotonic() - t0
            if status == 200 and text == b"":
                result.latencies.append(elapsed)
            else:
                result.errors += 1
                result.first_error = result.first_error or f"HTTP {status}: {text[:200]!r}"

    result.started = time.monotonic()
    await asyncio.gather(*(worker(result.started + cap) for _ in range(concurrency)))
    result.finished = time.monotonic()
    return result


def client(concurrency: int) -> aiohttp.ClientSession:
    return aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, within: float = 20.0) -> None:
    async with aiohttp.ClientSession() as http:
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"server exited with {proc.returncode} during start-up")
            with contextlib.suppress(aiohttp.ClientConnectionError):
                async with http.get(f"{url}/healthz") as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.02)
    raise RuntimeError(f"{url} did not become ready within {within:g} s")


# --- the two servers ----------------------------------------------------------------------------------------------
@dataclass
class Phase:
    name: str
    single: LoadResult | None = None  # one callback at a time: the service time, no queueing
    burst: LoadResult | None = None  # `concurrency` callbacks at once against an idle server
    load: LoadResult | None = None  # the sustained run: `concurrency` always in flight
    idle_rss_mib: float = float("nan")
    peak_rss_mib: float = float("nan")
    cpu_start: float = 0.0  # the server's CPU seconds when the sustained run began
    server_cpu: float = float("nan")  # CPU seconds of the server during the sustained run
    bench_cpu: float = float("nan")  # CPU seconds of this process (client + fakes) in the same window
    other_cpu: float = float("nan")  # CPU seconds of every other process on the machine in that window
    total_cpu: float = float("nan")  # CPU seconds of the daemon from the sustained run's start to its last answer
    answers: int = 0
    answers_rate: float = float("nan")
    answers_complete: bool = False
    exit_code: int | None = None


async def drive(phase: Phase, url: str, pid: int, args: argparse.Namespace, drained: Drained) -> None:
    """Warm-up, one at a time, a burst, then the sustained run; fresh MsgIds each, the server idle in between."""
    first, batches = 1, []
    for count in (args.warmup, args.single, args.concurrency, args.callbacks):
        batches.append(prepare(url, count, args.users, first))
        first += count
    warm, single, burst, sustained = batches
    async with client(args.concurrency) as http:
        for requests, width in ((warm, args.concurrency), (single, 1), (burst, args.concurrency)):
            result = await fire(http, requests, width, args.time_cap)
            await drained(result.ok)
            await asyncio.sleep(PAUSE)
            if requests is single:
                phase.single = result
            elif requests is burst:
                phase.burst = result
        phase.cpu_start, bench0, busy0 = proc_cpu_seconds(pid), self_cpu_seconds(), machine_busy_seconds()
        phase.load = await fire(http, sustained, args.concurrency, args.time_cap)
        phase.server_cpu = proc_cpu_seconds(pid) - phase.cpu_start
        phase.bench_cpu = self_cpu_seconds() - bench0
        phase.other_cpu = machine_busy_seconds() - busy0 - phase.server_cpu - phase.bench_cpu


def daemon_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The daemon's config keys: `--set`, over model timeouts past `--model-delay` (answers held back stay held)."""
    held = args.model_delay + 60.0
    waits = {"model_timeout": held, "first_token_timeout": held} if args.model_delay else {}
    return waits | args.overrides


async def daemon_phase(args: argparse.Namespace, workdir: Path) -> Phase:
    phase = Phase("daemon")
    async with FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as wecom, FakeModel() as model:
        model.set_reply(REPLY)
        model.set_delay(args.model_delay)
        daemon = DaemonProcess(make_settings(workdir, wecom, model, **daemon_overrides(args)), workdir)
        acked = 0

        async def drained(count: int) -> None:
            nonlocal acked
            acked += count
            goal = acked
            with contextlib.suppress(AssertionError):  # a shortfall shows in the answer count
                await wecom.wait_for(lambda: len(wecom.sent) >= goal, timeout=args.time_cap, what="every answer")

        try:
            await daemon.start()
            assert daemon.proc is not None
            pid = daemon.proc.pid
            if args.placement:
                pin_process(pid, args.placement.server)
            await asyncio.sleep(SETTLE)
            phase.idle_rss_mib = proc_status_mib(pid, "VmRSS")
            await drive(phase, daemon.url, pid, args, drained)
            assert phase.load is not None
            sent_before = acked  # the earlier steps' answers, all delivered before the sustained run began
            await drained(phase.load.ok)
            phase.total_cpu = proc_cpu_seconds(pid) - phase.cpu_start
            phase.answers = max(0, len(wecom.sent) - sent_before)
            phase.answers_complete = len(wecom.sent) >= acked
            sends = [r.at for r in wecom.requests_to("/cgi-bin/message/send") if r.status == 200]
            if phase.answers > 0:
                phase.answers_rate = phase.answers / (max(sends) - phase.load.started)
            phase.peak_rss_mib = proc_status_mib(pid, "VmHWM")
            try:
                phase.exit_code = await daemon.terminate(timeout=30)
            except TimeoutError:
                phase.exit_code = -9  # reported: it did not exit within 30 s of SIGTERM and was killed
        finally:
            await daemon.ensure_stopped()
    return phase


async def bare_phase(args: argparse.Namespace, workdir: Path) -> Phase:
    phase = Phase("bare aiohttp")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with (workdir / "bare.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(SCRIPT), "--bare-server", str(port),
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip

    async def nothing_to_drain(_count: int) -> None:
        return None

    try:
        await wait_healthy(url, proc)
        if args.placement:
            pin_process(proc.pid, args.placement.server)
        await asyncio.sleep(SETTLE)
        phase.idle_rss_mib = proc_status_mib(proc.pid, "VmRSS")
        await drive(phase, url, proc.pid, args, nothing_to_drain)
        phase.peak_rss_mib = proc_status_mib(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            phase.exit_code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    return phase


# --- the report ---------------------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def ms(result: LoadResult | None, q: float) -> str:
    return fmt(result.quantile_ms(q)) if result else "—"


def report(args: argparse.Namespace, daemon: Phase, bare: Phase | None) -> None:
    phases = [daemon] + ([bare] if bare else [])

    def row(label: str, values: list[str]) -> None:
        print(f"  {label:<38}" + "".join(f"{v:>14}" for v in values))

    def daemon_only(value: str) -> list[str]:
        return [value] + (["—"] if bare else [])

    def per_callback(seconds: float, p: Phase) -> str:
        return fmt(1000 * seconds / p.load.ok, 2) if p.load and p.load.ok else "—"

    c = args.concurrency
    print()
    print(
        f"callback benchmark: {args.callbacks} callbacks with {c} in flight, {args.users} users, "
        f"{'instant model' if not args.model_delay else 'model with a delay'} "
        f"(after {args.warmup} warm-up, {args.single} one at a time, a burst of {c})"
    )
    load1, load5, _ = os.getloadavg()
    where = (
        args.placement.describe()
        if args.placement
        else "load generator, FakeWeCom and FakeModel share these cores with the server"
    )
    python = sys.version.split()[0]
    print(f"machine: {os.cpu_count()} CPUs, Python {python}, load average {load1:.2f}/{load5:.2f}; {where}")
    if overrides := daemon_overrides(args):
        print(f"daemon config overrides: {overrides}")
    if args.model_delay:
        print(f"FakeModel waits {args.model_delay:g} s before each answer")
    print()
    row("", [p.name for p in phases])
    row("one at a time: ack p50 / p99 (ms)", [f"{ms(p.single, 0.5)} / {ms(p.single, 0.99)}" for p in phases])
    row(f"burst of {c} from idle: p50 / max (ms)", [f"{ms(p.burst, 0.5)} / {ms(p.burst, 1.0)}" for p in phases])
    for q, label in ((0.50, "p50"), (0.90, "p90"), (0.99, "p99"), (1.0, "max")):
        row(f"{c} in flight: ack {label} (ms)", [ms(p.load, q) for p in phases])
    row(f"{c} in flight: callbacks/s", [fmt(p.load.rate, 0) if p.load else "—" for p in phases])
    row("acked / errors", [f"{p.load.ok} / {p.load.errors}" if p.load else "—" for p in phases])
    partial = "" if daemon.answers_complete else f" ({daemon.answers} only)"
    row("answers/s (end to end)", daemon_only(fmt(daemon.answers_rate, 0) + partial))
    row("server CPU ms / callback", [per_callback(p.server_cpu, p) for p in phases])
    row("daemon CPU ms / answered callback", daemon_only(per_callback(daemon.total_cpu, daemon)))
    row("bench-process CPU ms / callback", [per_callback(p.bench_cpu, p) for p in phases])
    row(
        "other processes' CPU (cores)",
        [fmt(max(0.0, p.other_cpu / (p.load.finished - p.load.started)), 2) if p.load else "—" for p in phases],
    )
    row("idle RSS (MiB)", [fmt(p.idle_rss_mib) for p in phases])
    row("peak RSS (MiB)", [fmt(p.peak_rss_mib) for p in phases])
    ratio = ratio_of(daemon, bare)
    if not math.isnan(ratio):
        row("ratio daemon / bare (callbacks/s)", [f"{ratio:.2f}"])
    for p in phases:
        for step in (p.single, p.burst, p.load):
            if step and step.errors:
                print(f"  {p.name}: {step.errors} error(s), the first: {step.first_error}")
            if step and step.cut_short:
                print(f"  {p.name}: the {args.time_cap:g} s time cap ended a step early")
        if p.exit_code == -9:
            print(f"  {p.name}: did not exit within 30 s of SIGTERM and was killed")
        elif p.exit_code not in (0, None):
            print(f"  {p.name}: exited with code {p.exit_code} on SIGTERM")

    print()
    print("targets (2-core machine):")
    p99 = daemon.load.quantile_ms(0.99) if daemon.load else float("nan")
    bare_p99 = f", bare handler {ms(bare.load, 0.99)} ms" if bare else ""
    verdicts = [
        (p99 < TARGET_P99_MS, f"ack p99 under {TARGET_P99_MS:g} ms with {c} in flight", f"{fmt(p99)} ms{bare_p99}"),
        (
            ratio >= TARGET_RATIO,
            f"at least {TARGET_RATIO:.0%} of the bare handler's callbacks/s",
            f"{fmt(100 * ratio, 0)} %",
        ),
        (
            daemon.idle_rss_mib < TARGET_IDLE_RSS_MB,
            f"idle RSS under {TARGET_IDLE_RSS_MB:g} MB",
            f"{fmt(daemon.idle_rss_mib)} MiB",
        ),
    ]
    for met, what, figure in verdicts:
        print(f"  {'✓' if met else '✗'} {what}: {figure}")
    needed = c / (TARGET_P99_MS / 1000)
    print(
        f"  note: with {c} always in flight the mean ack is {c} ÷ callbacks/s (Little's law), so a p99 under "
        f"{TARGET_P99_MS:g} ms needs more than {needed:,.0f} callbacks/s"
        + (f"; the bare handler did {bare.load.rate:,.0f}" if bare and bare.load else "")
    )


# --- entry point --------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Callback benchmark: the daemon next to a bare aiohttp handler.")
    parser.add_argument("--callbacks", type=int, default=4000, help="callbacks in the sustained run (4000)")
    parser.add_argument("--concurrency", type=int, default=200, help="requests in flight, and the burst size (200)")
    parser.add_argument("--users", type=int, default=50, help="distinct senders (50)")
    parser.add_argument("--warmup", type=int, default=200, help="callbacks sent first, not counted (200)")
    parser.add_argument("--single", type=int, default=100, help="callbacks sent one at a time (100)")
    parser.add_argument("--time-cap", type=float, default=60.0, help="seconds per step at most (60)")
    parser.add_argument(
        "--model-delay", type=float, default=0.0, help="seconds FakeModel waits before each answer (0: instant)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="daemon-then-bare rounds; the median one is shown (3)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare aiohttp handler")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (daemon.log, the database)")
    parser.add_argument(
        "--no-pin", action="store_true", help="let the scheduler place the load generator and the server"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config.yml key for the daemon, e.g. --set stream_answers=false (repeatable)",
    )
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    for name in ("callbacks", "concurrency", "users", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    for name in ("warmup", "single", "model_delay"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    args.overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set wants KEY=VALUE, not {item!r}")
        args.overrides[key.strip()] = yaml.safe_load(value)
    args.placement = None if args.bare_server is not None else placement(not args.no_pin)
    return args


def print_logs(workdir: Path) -> None:
    for log in sorted(workdir.rglob("*.log")):
        print(f"--- the end of {log}\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)


async def amain(args: argparse.Namespace, workdir: Path) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):  # also when started in the background, where SIGINT is ignored
        asyncio.get_running_loop().add_signal_handler(sig, main_task.cancel)
    rounds: list[tuple[Phase, Phase | None]] = []
    try:
        for number in range(1, args.rounds + 1):  # the two servers by turns: a machine that drifts shows in every pair
            (workdir / f"daemon-{number}").mkdir()
            daemon = await daemon_phase(args, workdir / f"daemon-{number}")
            rounds.append((daemon, None if args.no_bare else await bare_phase(args, workdir)))
    except (RuntimeError, AssertionError, OSError, TimeoutError, ValueError) as exc:
        print(f"bench: could not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        print_logs(workdir)
        return 1
    daemon, bare = median_round(rounds)
    report(args, daemon, bare)
    if len(rounds) > 1:
        report_rounds(rounds)
    return 0


def ratio_of(daemon: Phase, bare: Phase | None) -> float:
    if bare is None or bare.load is None or daemon.load is None or not bare.load.rate:
        return float("nan")
    return daemon.load.rate / bare.load.rate


def median_round(rounds: list[tuple[Phase, Phase | None]]) -> tuple[Phase, Phase | None]:
    """The round whose ratio (else the daemon's callbacks/s) is the median: the one the table shows."""

    def key(pair: tuple[Phase, Phase | None]) -> float:
        ratio = ratio_of(*pair)
        rate = pair[0].load.rate if pair[0].load else 0.0
        return rate if math.isnan(ratio) else ratio

    return sorted(rounds, key=key)[(len(rounds) - 1) // 2]


def report_rounds(rounds: list[tuple[Phase, Phase | None]]) -> None:
    print()
    print(f"each of the {len(rounds)} rounds (daemon, then bare handler; the table above is the median round):")
    for number, (daemon, bare) in enumerate(rounds, 1):
        load = daemon.load
        line = f"  round {number}: daemon {fmt(load.rate, 0) if load else '—'}/s, ack p99 {ms(load, 0.99)} ms"
        if bare is not None:
            line += f"; bare {fmt(bare.load.rate, 0) if bare.load else '—'}/s, ack p99 {ms(bare.load, 0.99)} ms"
            line += f"; ratio {fmt(ratio_of(daemon, bare), 2)}"
        print(line)


def main() -> int:
    args = parse_args()
    if args.bare_server is not None:
        run_bare_server(args.bare_server)
        return 0
    if args.placement:
        os.sched_setaffinity(0, args.placement.load)  # before any thread or server starts: they inherit it
    workdir = Path(tempfile.mkdtemp(prefix="chatgpt-wecom-bench-"))
    try:
        return asyncio.run(amain(args, workdir))
    except asyncio.CancelledError:
        print("bench: interrupted; the servers were stopped", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"(kept {workdir})")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
