"""Callback benchmark: the real daemon against the stand-ins, next to a bare aiohttp handler with and without a commit.

Run from the repository root: ``.venv/bin/python bench/callback.py`` (or ``make bench``). Not a test: it prints
figures and exits 0 whether or not the targets are met (1 only when it could not run at all).

A round, with all three servers up at once (each a process of its own, on 127.0.0.1):

1. Starts FakeWeCom and FakeModel (an instant fixed reply) in this process, the daemon as
   ``python -m chatgpt_wecom run --config …`` with its data in a temp dir, and the two baselines of
   bench/baselines.py: the *bare* handler, which reads the body, parses the envelope, verifies the signature,
   decrypts and acks — nothing else; and *bare + commit*, which also commits the decrypted document to SQLite
   (WAL, fsync, group commit on a thread) before it acks: the cheapest handler that keeps the daemon's promise
   of persist before ack. Every signed, encrypted text callback (distinct MsgIds, spread over ``--users``
   users) is built before any timing, so signing and encryption are not measured.
2. Reads each server's idle RSS from ``/proc/<pid>/status`` once /healthz answers and the processes have settled.
3. For each server in turn: ``--warmup`` callbacks (not counted); ``--single`` callbacks one at a time (the
   service time, no queueing); one burst of ``--concurrency`` callbacks at once. After each step it waits until
   the daemon has delivered every answer, so that it is idle again.
4. The sustained run: ``--callbacks`` callbacks per server with exactly ``--concurrency`` in flight, each timed
   from send to its ``200 ""``, in ``--slices`` slices per server that alternate daemon, bare, commit, commit,
   bare, daemon, daemon, … so that a drift of the machine's speed during the run weighs on all alike. After each
   daemon slice it waits for that slice's answers (else they would be written during another server's slice)
   until all are out or none has come for ``QUIET`` seconds (the daemon paces each member to 30 messages a
   minute). A server's figures pool its own slices: callbacks/s is its acks over the sum of its slices'
   durations, and the CPU figures are summed over its slices only. The CPU each server used during the others'
   slices is printed too. Answers per second are the sustained callbacks' answers over the time from each daemon
   slice's first send to the last answer FakeWeCom accepted after it, summed over the slices. ``--no-commit``
   leaves out bare + commit; ``--no-bare`` both baselines: only the daemon runs, still in ``--slices`` slices,
   each followed by the wait for its answers.

With ``--model-delay`` the daemon's model timeouts are set past the delay (unless ``--set`` gives them): the tests'
20 s would give up on every held-back answer mid-run and retry it, putting model calls on the path being measured.
When the delay is at least ``--time-cap``, no answer could come back within a wait, so there are no waits: the
answers stay held back for the whole run and only the ack path is measured.

The load generator, FakeWeCom and FakeModel run in this process. On a machine with two CPUs or more each side gets
CPUs of its own (``--no-pin`` leaves them to the scheduler): this process the first one, the servers — every
thread of them — the rest, here one. Left to share, the two took each other's cores at random moments, and the
same code measured 1,260 and 1,800 callbacks/s an hour apart. CPU used by other processes during the sustained run
is printed too.

This repeats for ``--rounds`` rounds (3), each with fresh servers, and the table shows the round with the median
ratio of the daemon to the bare handler, followed by one line per round. The machine's speed drifts by up to 2×
within tens of seconds; measured one after the other, the daemon and the bare handler gave ratios of 0.36, 1.18
and 0.47 for the same code.
"""
# ruff: noqa: E402

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

SCRIPT = Path(__file__).resolve()
BASELINES = SCRIPT.parent / "baselines.py"
ROOT = SCRIPT.parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import aiohttp
import yaml
from yarl import URL

from chatgpt_wecom.demo.ports import unused_port
from tests.daemon_runner import AGENT_ID, DaemonProcess, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner

REPLY = "好的，收到。"  # what the instant model answers: one short WeCom message per callback
TARGET_P99_MS = 50.0
TARGET_RATIO = 0.7
TARGET_IDLE_RSS_MB = 100.0
SETTLE = 1.0  # seconds between "ready" and the idle RSS reading
QUIET = 1.0  # seconds without a new answer after which a wait for answers ends (the pacing holds the rest)
PAUSE = 0.2  # seconds of quiet between the steps, and between the slices of the sustained run
REQUEST_TIMEOUT = 30.0  # per callback request; a hung server cannot stall a step past --time-cap + this

Prepared = tuple[URL, bytes]
# Wait until the answers to `n` more acked callbacks went out; the arrival of the last answer so far (0: none).
Drained = Callable[[int], Awaitable[float]]


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


def machine_seconds() -> tuple[float, float]:
    """CPU seconds so far, every core (/proc/stat): the machine's processes busy, and stolen by the host (a VM's
    CPU time given to others: the whole machine stands still meanwhile)."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]
    )
    tick = os.sysconf("SC_CLK_TCK")
    return (user + nice + system + irq + softirq) / tick, steal / tick


def self_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class CpuReading:
    """CPU seconds used so far by each server (in the order of `pids`), by this process, by the whole machine, and
    stolen from it by the host."""

    servers: tuple[float, ...]
    bench: float
    machine: float
    stolen: float

    @classmethod
    def now(cls, pids: Sequence[int]) -> CpuReading:
        servers = tuple(proc_cpu_seconds(pid) for pid in pids)
        return cls(servers, self_cpu_seconds(), *machine_seconds())

    def __sub__(self, start: CpuReading) -> CpuReading:
        spent = tuple(end - begin for end, begin in zip(self.servers, start.servers, strict=True))
        return CpuReading(spent, self.bench - start.bench, self.machine - start.machine, self.stolen - start.stolen)


# --- CPU placement ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Placement:
    """Which CPUs the load generator (this process) and the servers under test run on."""

    load: frozenset[int]
    server: frozenset[int]

    def describe(self, servers: int) -> str:
        return (
            f"load generator, FakeWeCom and FakeModel on CPU {_cpus(self.load)}, "
            f"{f'all {servers} servers' if servers > 1 else 'the server'} under test on CPU {_cpus(self.server)}"
        )


def _cpus(cpus: frozenset[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def placement(pin: bool) -> Placement | None:
    """The first usable CPU for the load generator, the others for the servers; None unpinned or on one CPU."""
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
class Batches:
    """One server's callbacks for a round, signed and encrypted before any timing; fresh MsgIds in each."""

    warmup: list[Prepared]
    single: list[Prepared]
    burst: list[Prepared]
    slices: list[list[Prepared]]  # the sustained run, slice by slice


def split(total: int, parts: int) -> list[int]:
    """`total` in `parts` sizes that differ by one at most and add up to exactly `total`."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def prepare_batches(base_url: str, args: argparse.Namespace) -> Batches:
    sizes = [args.warmup, args.single, args.concurrency, *split(args.callbacks, args.slices)]
    batches, first = [], 1
    for count in sizes:
        batches.append(prepare(base_url, count, args.users, first))
        first += count
    return Batches(batches[0], batches[1], batches[2], batches[3:])


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, successful acks only
    errors: int = 0
    first_error: str = ""
    elapsed: float = 0.0  # seconds from the first send to the last reply (summed when slices are pooled)
    cut_short: bool = False  # the time cap ended it before every callback was sent

    @property
    def ok(self) -> int:
        return len(self.latencies)

    @property
    def rate(self) -> float:
        return self.ok / self.elapsed if self.elapsed > 0 else 0.0

    def quantile_ms(self, q: float) -> float:
        """Nearest-rank quantile of the ack latencies, in ms."""
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))] * 1000

    def pool(self, other: LoadResult) -> None:
        """Add another slice's acks, errors and duration to these."""
        self.latencies += other.latencies
        self.errors += other.errors
        self.first_error = self.first_error or other.first_error
        self.elapsed += other.elapsed
        self.cut_short = self.cut_short or other.cut_short


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

    # This process's own garbage collector runs before the requests are timed and is off while they are: a full
    # pass over its heap (the prepared callbacks, aiohttp's objects) took 50–94 ms, stalled every request in
    # flight, and showed as a server's ack p99 (the same round and server each run, where allocations triggered it).
    gc.collect()
    gc.disable()
    try:
        started = time.monotonic()
        await asyncio.gather(*(worker(started + cap) for _ in range(concurrency)))
        result.elapsed = time.monotonic() - started
    finally:
        gc.enable()
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


# --- the servers --------------------------------------------------------------------------------------------------
@dataclass
class Phase:
    """One server's figures for a round."""

    name: str
    single: LoadResult = field(default_factory=LoadResult)  # one callback at a time: the service time, no queueing
    burst: LoadResult = field(default_factory=LoadResult)  # `concurrency` callbacks at once against an idle server
    load: LoadResult = field(default_factory=LoadResult)  # the sustained run's slices: `concurrency` in flight
    idle_rss_mib: float = float("nan")
    peak_rss_mib: float = float("nan")
    server_cpu: float = 0.0  # CPU seconds of the server during its own slices
    bench_cpu: float = 0.0  # CPU seconds of this process (client + fakes) during them
    other_cpu: float = 0.0  # CPU seconds of every process but the servers and this one during them
    stolen: float = 0.0  # CPU seconds the host took from this machine during them
    cpu_elsewhere: float = 0.0  # CPU seconds of the server during the other servers' slices
    cpu_start: float = 0.0  # the server's CPU seconds when the sustained run began
    total_cpu: float = float("nan")  # CPU seconds of the daemon from the sustained run's start to its last answer
    answer_time: float = 0.0  # seconds from each of the daemon's slices' start to its last answer, summed
    answers: int = 0
    answers_rate: float = float("nan")
    answers_complete: bool = False
    exit_code: int | None = None


@dataclass
class Server:
    """A server under test, up for the whole round."""

    phase: Phase
    url: str
    pid: int
    drained: Drained
    batches: Batches


def answers_held(args: argparse.Namespace) -> bool:
    """Whether no answer can come back within a wait (`--model-delay` at least `--time-cap`): then none is awaited."""
    return bool(args.model_delay >= args.time_cap)


class Answers:
    """The daemon's answers as FakeWeCom accepted them, and the waits until those to the acked callbacks went out."""

    def __init__(self, wecom: FakeWeCom, args: argparse.Namespace) -> None:
        self.wecom = wecom
        self.wait = 0.0 if answers_held(args) else args.time_cap
        self.acked = 0

    @property
    def sent(self) -> int:
        return len(self.wecom.sent)

    async def drained(self, count: int) -> float:
        """Wait until the answers to `count` more acked callbacks went out; when the last answer so far arrived."""
        self.acked += count
        goal = self.acked
        deadline, seen = time.monotonic() + self.wait, -1
        # Until every answer is out, or none came for QUIET seconds: the daemon paces each member to WeCom's 30
        # messages a minute, and what the pacing holds goes out later (shown as CPU during the others' slices).
        while self.sent < goal and self.sent != seen and (left := deadline - time.monotonic()) > 0:
            seen = self.sent
            with contextlib.suppress(AssertionError):  # a shortfall shows in the answer count
                await self.wecom.wait_for(lambda: self.sent >= goal, timeout=min(QUIET, left), what="every answer")
        return max((r.at for r in self.wecom.requests_to("/cgi-bin/message/send") if r.status == 200), default=0.0)


async def nothing_to_drain(_count: int) -> float:
    return 0.0


def daemon_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The daemon's config keys: `--set`, over model timeouts past `--model-delay` (answers held back stay held)."""
    held = args.model_delay + 60.0
    waits: dict[str, object] = {"model_timeout": held, "first_token_timeout": held} if args.model_delay else {}
    overrides: dict[str, object] = args.overrides
    return waits | overrides


@contextlib.asynccontextmanager
async def daemon_server(
    args: argparse.Namespace, workdir: Path, wecom: FakeWeCom, model: FakeModel, answers: Answers
) -> AsyncIterator[Server]:
    """The daemon, up until the block ends; then SIGTERM and its exit code (killed if it fails to exit)."""
    daemon = DaemonProcess(make_settings(workdir, wecom, model, **daemon_overrides(args)), workdir)
    phase = Phase("daemon")
    batches = prepare_batches(daemon.url, args)
    try:
        await daemon.start()
        assert daemon.proc is not None
        yield Server(phase, daemon.url, daemon.proc.pid, answers.drained, batches)
        phase.peak_rss_mib = proc_status_mib(daemon.proc.pid, "VmHWM")
        try:
            phase.exit_code = await daemon.terminate(timeout=30)
        except TimeoutError:
            phase.exit_code = -9  # reported: it did not exit within 30 s of SIGTERM and was killed
    finally:
        await daemon.ensure_stopped()


@contextlib.asynccontextmanager
async def baseline_server(args: argparse.Namespace, workdir: Path, commit: bool) -> AsyncIterator[Server]:
    """A baseline of bench/baselines.py, up until the block ends; then SIGTERM and its exit code (killed if it fails
    to exit). `commit`: the one that commits each callback to SQLite before it acks."""
    port = unused_port()
    url = f"http://127.0.0.1:{port}"
    phase = Phase("bare + commit" if commit else "bare aiohttp")
    batches = prepare_batches(url, args)
    name = "bare-commit" if commit else "bare"
    options = ["--commit", str(workdir / f"{name}.db")] if commit else []
    with (workdir / f"{name}.log").open("ab") as log:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, str(BASELINES), str(port), *options,
            stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
        )  # fmt: skip
    try:
        await wait_healthy(url, proc)
        yield Server(phase, url, proc.pid, nothing_to_drain, batches)
        phase.peak_rss_mib = proc_status_mib(proc.pid, "VmHWM")
        proc.send_signal(signal.SIGTERM)
        with contextlib.suppress(TimeoutError):
            phase.exit_code = await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


# --- a round ------------------------------------------------------------------------------------------------------
@dataclass
class Round:
    """One round's figures: the daemon's, and each baseline's that ran."""

    daemon: Phase
    bare: Phase | None = None
    commit: Phase | None = None  # the bare handler that commits each callback before it acks

    @property
    def phases(self) -> list[Phase]:
        return [p for p in (self.daemon, self.bare, self.commit) if p is not None]


async def run_round(args: argparse.Namespace, workdir: Path) -> Round:
    """Every server up at once: their first steps in turn, then the sustained run in alternating slices."""
    async with (
        FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as wecom,
        FakeModel() as model,
        contextlib.AsyncExitStack() as stack,
    ):
        model.set_reply(REPLY)
        model.set_delay(args.model_delay)
        answers = Answers(wecom, args)
        daemon = await stack.enter_async_context(daemon_server(args, workdir, wecom, model, answers))
        servers = [daemon]
        for commit in [] if args.no_bare else [False] if args.no_commit else [False, True]:
            servers.append(await stack.enter_async_context(baseline_server(args, workdir, commit)))
        await settle(servers, args)
        async with client(args.concurrency) as http:
            for server in servers:
                await first_steps(http, server, args)
            acked_before = answers.acked  # the first steps' answers, delivered before the sustained run began
            daemon.phase.cpu_start = proc_cpu_seconds(daemon.pid)
            await sustained_run(http, servers, args)
        await count_answers(daemon, answers, acked_before)
    return Round(*(server.phase for server in servers))


async def settle(servers: list[Server], args: argparse.Namespace) -> None:
    """Every thread of each server onto the server CPUs, a moment of quiet, then each one's idle RSS."""
    if args.placement:
        for server in servers:
            pin_process(server.pid, args.placement.server)
    await asyncio.sleep(SETTLE)
    for server in servers:
        server.phase.idle_rss_mib = proc_status_mib(server.pid, "VmRSS")


async def step(
    http: aiohttp.ClientSession, server: Server, requests: list[Prepared], width: int, cap: float
) -> LoadResult:
    """One step of `requests` with `width` in flight; then its answers out and a pause, so the server is idle."""
    result = await fire(http, requests, width, cap)
    await server.drained(result.ok)
    await asyncio.sleep(PAUSE)
    return result


async def first_steps(http: aiohttp.ClientSession, server: Server, args: argparse.Namespace) -> None:
    """Warm-up (not counted), one at a time, then a burst of `concurrency` against the idle server."""
    batches = server.batches
    await step(http, server, batches.warmup, args.concurrency, args.time_cap)
    server.phase.single = await step(http, server, batches.single, 1, args.time_cap)
    server.phase.burst = await step(http, server, batches.burst, args.concurrency, args.time_cap)


def abba(servers: int, slices: int) -> list[tuple[int, int]]:
    """(server, its slice) in the order they run: 0,1,2,2,1,0,0,1,2,… so that a linear drift weighs on all alike."""
    order = list(range(servers))
    runs = [i for n in range(slices) for i in (order if n % 2 == 0 else order[::-1])]
    return [(i, runs[:k].count(i)) for k, i in enumerate(runs)]


async def sustained_run(http: aiohttp.ClientSession, servers: list[Server], args: argparse.Namespace) -> None:
    for index, number in abba(len(servers), args.slices):
        await sustained_slice(http, servers, index, servers[index].batches.slices[number], args)


async def sustained_slice(
    http: aiohttp.ClientSession, servers: list[Server], index: int, requests: list[Prepared], args: argparse.Namespace
) -> None:
    """One slice against `servers[index]`, booked to it; then its answers out and a pause."""
    server, pids = servers[index], [s.pid for s in servers]
    started, before = time.monotonic(), CpuReading.now(pids)
    result = await fire(http, requests, args.concurrency, args.time_cap)
    finished = time.monotonic()
    book_slice(servers, index, result, CpuReading.now(pids) - before)
    last_answer = await server.drained(result.ok)
    server.phase.answer_time += max(finished, last_answer) - started
    await asyncio.sleep(PAUSE)


def book_slice(servers: list[Server], index: int, result: LoadResult, spent: CpuReading) -> None:
    """The slice's acks and CPU to the server that ran it; each other server's CPU to its `cpu_elsewhere`."""
    for i, server in enumerate(servers):
        phase = server.phase
        if i != index:
            phase.cpu_elsewhere += spent.servers[i]
            continue
        phase.load.pool(result)
        phase.server_cpu += spent.servers[i]
        phase.bench_cpu += spent.bench
        phase.other_cpu += spent.machine - sum(spent.servers) - spent.bench
        phase.stolen += spent.stolen


async def count_answers(daemon: Server, answers: Answers, acked_before: int) -> None:
    """The last of the sustained run's answers out; then how many there were, and how fast they went out."""
    phase = daemon.phase
    started = time.monotonic()
    phase.answer_time += max(0.0, await answers.drained(0) - started)
    phase.total_cpu = proc_cpu_seconds(daemon.pid) - phase.cpu_start
    phase.answers = max(0, answers.sent - acked_before)
    phase.answers_complete = answers.sent >= answers.acked
    if phase.answers > 0 and phase.answer_time > 0:
        phase.answers_rate = phase.answers / phase.answer_time


# --- the report ---------------------------------------------------------------------------------------------------
def fmt(value: float, digits: int = 1) -> str:
    return "—" if math.isnan(value) else f"{value:,.{digits}f}"


def ms(result: LoadResult, q: float) -> str:
    return fmt(result.quantile_ms(q))


def report(args: argparse.Namespace, figures: Round) -> None:
    daemon, bare, commit = figures.daemon, figures.bare, figures.commit
    phases = figures.phases

    def row(label: str, values: list[str]) -> None:
        print(f"  {label:<42}" + "".join(f"{v:>14}" for v in values))

    def daemon_only(value: str) -> list[str]:
        return [value] + ["—"] * (len(phases) - 1)

    def per_callback(seconds: float, p: Phase) -> str:
        return fmt(1000 * seconds / p.load.ok, 2) if p.load.ok else "—"

    def cores(seconds: float, p: Phase) -> str:
        return fmt(max(0.0, seconds / p.load.elapsed), 2) if p.load.elapsed > 0 else "—"

    c = args.concurrency
    alternating = {1: "", 2: ", alternating with the bare handler's (d,b,b,d,…)"}.get(
        len(phases), ", alternating with the two baselines' (d,b,c,c,b,d,…)"
    )
    print()
    print(
        f"callback benchmark: {args.callbacks} callbacks per server with {c} in flight, in {args.slices} slices"
        f"{alternating}; "
        f"{args.users} users, {'instant model' if not args.model_delay else 'model with a delay'} "
        f"(after {args.warmup} warm-up, {args.single} one at a time, a burst of {c})"
    )
    load1, load5, _ = os.getloadavg()
    where = (
        args.placement.describe(len(phases))
        if args.placement
        else "load generator, FakeWeCom and FakeModel share these cores with the servers under test"
    )
    python = sys.version.split()[0]
    print(f"machine: {os.cpu_count()} CPUs, Python {python}, load average {load1:.2f}/{load5:.2f}; {where}")
    if overrides := daemon_overrides(args):
        print(f"daemon config overrides: {overrides}")
    if args.model_delay:
        held = " (longer than --time-cap: no waits for answers)" if answers_held(args) else ""
        print(f"FakeModel waits {args.model_delay:g} s before each answer{held}")
    print()
    row("", [p.name for p in phases])
    row("one at a time: ack p50 / p99 (ms)", [f"{ms(p.single, 0.5)} / {ms(p.single, 0.99)}" for p in phases])
    row(f"burst of {c} from idle: p50 / max (ms)", [f"{ms(p.burst, 0.5)} / {ms(p.burst, 1.0)}" for p in phases])
    for q, label in ((0.50, "p50"), (0.90, "p90"), (0.99, "p99"), (1.0, "max")):
        row(f"{c} in flight: ack {label} (ms)", [ms(p.load, q) for p in phases])
    row(f"{c} in flight: callbacks/s", [fmt(p.load.rate, 0) for p in phases])
    row("acked / errors", [f"{p.load.ok} / {p.load.errors}" for p in phases])
    partial = "" if daemon.answers_complete else f" ({daemon.answers} only)"
    row("answers/s (end to end)", daemon_only(fmt(daemon.answers_rate, 0) + partial))
    row("server CPU ms / callback", [per_callback(p.server_cpu, p) for p in phases])
    if bare:
        row("server CPU during the others' slices (ms)", [fmt(1000 * p.cpu_elsewhere, 0) for p in phases])
    row("daemon CPU ms / answered callback", daemon_only(per_callback(daemon.total_cpu, daemon)))
    row("bench-process CPU ms / callback", [per_callback(p.bench_cpu, p) for p in phases])
    row("other processes' CPU (cores)", [cores(p.other_cpu, p) for p in phases])
    row("CPU stolen by the host (ms)", [fmt(1000 * p.stolen, 0) for p in phases])
    row("idle RSS (MiB)", [fmt(p.idle_rss_mib) for p in phases])
    row("peak RSS (MiB)", [fmt(p.peak_rss_mib) for p in phases])
    ratio = ratio_of(daemon, bare)
    for label, (of, to) in {
        "ratio daemon / bare (callbacks/s)": (daemon, bare),
        "ratio daemon / bare + commit": (daemon, commit),
        "ratio bare + commit / bare": (commit, bare),
    }.items():
        if not math.isnan(value := ratio_of(of, to)):
            row(label, [f"{value:.2f}"])
    for p in phases:
        report_faults(args, p)

    print()
    print("targets (2-core machine):")
    p99 = daemon.load.quantile_ms(0.99)
    bare_p99 = f", bare handler {ms(bare.load, 0.99)} ms" if bare else ""
    verdicts: list[tuple[bool | None, str, str]] = [
        (p99 < TARGET_P99_MS, f"ack p99 under {TARGET_P99_MS:g} ms with {c} in flight", f"{fmt(p99)} ms{bare_p99}"),
        (
            None if math.isnan(ratio) else ratio >= TARGET_RATIO,
            f"at least {TARGET_RATIO:.0%} of the bare handler's callbacks/s",
            "not measured (--no-bare)" if math.isnan(ratio) else f"{fmt(100 * ratio, 0)} %",
        ),
        (
            daemon.idle_rss_mib < TARGET_IDLE_RSS_MB,
            f"idle RSS under {TARGET_IDLE_RSS_MB:g} MB",
            f"{fmt(daemon.idle_rss_mib)} MiB",
        ),
    ]
    for met, what, figure in verdicts:
        print(f"  {'·' if met is None else '✓' if met else '✗'} {what}: {figure}")
    needed = c / (TARGET_P99_MS / 1000)
    print(
        f"  note: with {c} always in flight the mean ack is {c} ÷ callbacks/s (Little's law), so a p99 under "
        f"{TARGET_P99_MS:g} ms needs more than {needed:,.0f} callbacks/s"
        + (f"; the bare handler did {bare.load.rate:,.0f}" if bare else "")
    )


def report_faults(args: argparse.Namespace, p: Phase) -> None:
    """Errors, steps the time cap ended early, and an exit on SIGTERM that was not clean."""
    for step_result in (p.single, p.burst, p.load):
        if step_result.errors:
            print(f"  {p.name}: {step_result.errors} error(s), the first: {step_result.first_error}")
        if step_result.cut_short:
            print(f"  {p.name}: the {args.time_cap:g} s time cap ended a step early")
    if p.exit_code == -9:
        print(f"  {p.name}: did not exit within 30 s of SIGTERM and was killed")
    elif p.exit_code not in (0, None):
        print(f"  {p.name}: exited with code {p.exit_code} on SIGTERM")


# --- entry point --------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Callback benchmark: the daemon next to bare aiohttp handlers.")
    parser.add_argument("--callbacks", type=int, default=4000, help="callbacks per server in the sustained run (4000)")
    parser.add_argument("--concurrency", type=int, default=200, help="requests in flight, and the burst size (200)")
    parser.add_argument(
        "--slices", type=int, default=8, help="slices of the sustained run per server, the servers alternating (8)"
    )
    parser.add_argument("--users", type=int, default=50, help="distinct senders (50)")
    parser.add_argument("--warmup", type=int, default=200, help="callbacks sent first, not counted (200)")
    parser.add_argument("--single", type=int, default=100, help="callbacks sent one at a time (100)")
    parser.add_argument("--time-cap", type=float, default=60.0, help="seconds per step or slice at most (60)")
    parser.add_argument(
        "--model-delay", type=float, default=0.0, help="seconds FakeModel waits before each answer (0: instant)"
    )
    parser.add_argument("--rounds", type=int, default=3, help="rounds, fresh servers each; the median one is shown (3)")
    parser.add_argument("--no-bare", action="store_true", help="skip both baselines: the daemon alone")
    parser.add_argument("--no-commit", action="store_true", help="skip the baseline that commits each callback")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (daemon.log, the database)")
    parser.add_argument(
        "--no-pin", action="store_true", help="let the scheduler place the load generator and the servers"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config.yml key for the daemon, e.g. --set stream_answers=false (repeatable)",
    )
    args = parser.parse_args(argv)
    for name in ("callbacks", "concurrency", "slices", "users", "rounds"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1")
    if args.slices > args.callbacks:
        parser.error("--slices must not be more than --callbacks")
    for name in ("warmup", "single", "model_delay"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must not be negative")
    args.overrides = {}
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or not key:
            parser.error(f"--set wants KEY=VALUE, not {item!r}")
        args.overrides[key.strip()] = yaml.safe_load(value)
    args.placement = placement(not args.no_pin)
    return args


def print_logs(workdir: Path) -> None:
    for log in sorted(workdir.rglob("*.log")):
        print(f"--- the end of {log}\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)


async def amain(args: argparse.Namespace, workdir: Path) -> int:
    main_task = asyncio.current_task()
    assert main_task is not None
    for sig in (signal.SIGTERM, signal.SIGINT):  # also when started in the background, where SIGINT is ignored
        asyncio.get_running_loop().add_signal_handler(sig, main_task.cancel)
    rounds: list[Round] = []
    try:
        for number in range(1, args.rounds + 1):
            (workdir / f"round-{number}").mkdir()
            rounds.append(await run_round(args, workdir / f"round-{number}"))
    except (RuntimeError, AssertionError, OSError, TimeoutError, ValueError) as exc:
        print(f"bench: could not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", file=sys.stderr)
        print_logs(workdir)
        return 1
    report(args, median_round(rounds))
    if len(rounds) > 1:
        report_rounds(rounds)
    return 0


def ratio_of(server: Phase | None, baseline: Phase | None) -> float:
    """`server`'s callbacks/s over `baseline`'s; NaN when either did not run."""
    if server is None or baseline is None or not baseline.load.rate:
        return float("nan")
    return server.load.rate / baseline.load.rate


def median_round(rounds: list[Round]) -> Round:
    """The round whose ratio to the bare handler (else the daemon's callbacks/s) is the median: the one shown."""

    def key(figures: Round) -> float:
        ratio = ratio_of(figures.daemon, figures.bare)
        return figures.daemon.load.rate if math.isnan(ratio) else ratio

    return sorted(rounds, key=key)[(len(rounds) - 1) // 2]


def report_rounds(rounds: list[Round]) -> None:
    print()
    print(f"each of the {len(rounds)} rounds (the table above is the median round):")
    for number, figures in enumerate(rounds, 1):
        daemon, bare, commit = figures.daemon, figures.bare, figures.commit
        line = f"  round {number}: daemon {fmt(daemon.load.rate, 0)}/s, ack p99 {ms(daemon.load, 0.99)} ms"
        if bare is not None:
            line += f"; bare {fmt(bare.load.rate, 0)}/s, ack p99 {ms(bare.load, 0.99)} ms"
        if commit is not None:
            line += f"; bare + commit {fmt(commit.load.rate, 0)}/s"
        if bare is not None:
            line += f"; ratio {fmt(ratio_of(daemon, bare), 2)}"
        if commit is not None:
            line += f" (to bare + commit {fmt(ratio_of(daemon, commit), 2)})"
        print(line)


def main() -> int:
    args = parse_args()
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
