"""A run of identical log lines becomes a few lines and a count, so a flood of one event cannot flood the log.

`RepeatLimiter` wraps the handler that writes the log. The first `burst` records of a kind within `window` seconds
go through (a few different values — "applying migration 1 … 4" — are all seen); more of that kind in the window are
counted, not written. When the window closes — on a timer, at the next record of any kind, or when logging shuts
down — one line reports the count: "<the latest such line> (repeated 1,234 times in the last 60 s)".

Records are of the same kind when they come from the same logger, level, call site and message template (the
arguments may differ: "closed a connection from %s" is one kind whatever the address), and carry no exception or
an exception of the same type raised at the same place (a traceback is one line of the flood, whatever its text).
Different kinds are never held back, and a count is never dropped: at most `max_kinds` kinds are tracked at once;
beyond that, records simply go through.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

Kind = tuple[str, int, str, int, str, tuple[str, str, int] | None]


@dataclass(slots=True)
class _Run:
    started: float  # when the first record of this run went through
    passed: int = 1  # records of the run written so far
    repeats: int = 0  # records held back
    last: logging.LogRecord | None = None  # the latest record held back


def kind_of(record: logging.LogRecord) -> Kind:
    """What makes two records "the same line"."""
    raised: tuple[str, str, int] | None = None
    if record.exc_info and record.exc_info[0] is not None:
        tb = record.exc_info[2]
        while tb is not None and tb.tb_next is not None:
            tb = tb.tb_next
        where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else ("", 0)
        raised = (record.exc_info[0].__qualname__, *where)
    return record.name, record.levelno, record.pathname, record.lineno, str(record.msg), raised


class RepeatLimiter(logging.Handler):
    """Pass records on to `target`, holding back repeats of the same kind within `window` seconds."""

    def __init__(self, target: logging.Handler, window: float = 60.0, burst: int = 5, max_kinds: int = 1000) -> None:
        super().__init__()
        self.target = target
        self.window = window
        self.burst = burst
        self.max_kinds = max_kinds
        self._runs: dict[Kind, _Run] = {}  # in the order the runs started, so expired ones are at the front
        self._timer: threading.Timer | None = None
        self._guard = threading.RLock()  # held while passing records on: the timer thread reports too

    def handle(self, record: logging.LogRecord) -> bool:
        if record.levelno < self.target.level or not self.filter(record):
            return False
        with self._guard:
            now = time.monotonic()
            self._report_expired(now)
            kind = kind_of(record)
            run = self._runs.get(kind)
            if run is None or run.passed < self.burst:
                if run is not None:
                    run.passed += 1
                elif len(self._runs) < self.max_kinds:
                    self._runs[kind] = _Run(now)
                self.target.handle(record)
                return True
            run.repeats += 1
            run.last = record
            self._schedule(run.started + self.window - now)
            return False

    def emit(self, record: logging.LogRecord) -> None:
        self.target.handle(record)  # handle() decides what reaches here

    def flush(self) -> None:
        self.target.flush()

    def close(self) -> None:
        """Report every count still held (logging.shutdown() calls this at exit), then close the target."""
        with self._guard:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            self._report_expired(float("inf"))
        self.target.close()
        super().close()

    # --- under self._guard ---------------------------------------------------------------------------------------
    def _report_expired(self, now: float) -> None:
        for kind in list(self._runs):
            run = self._runs[kind]
            if now - run.started < self.window:
                break  # the rest started later
            del self._runs[kind]
            if run.last is not None:
                self.target.handle(_summary(run, min(now, time.monotonic())))

    def _schedule(self, delay: float) -> None:
        if self._timer is None:
            self._timer = threading.Timer(max(0.0, delay) + 0.01, self._on_timer)
            self._timer.daemon = True
            self._timer.start()

    def _on_timer(self) -> None:
        with self._guard:
            self._timer = None
            now = time.monotonic()
            self._report_expired(now)
            pending = [run.started for run in self._runs.values() if run.repeats]
            if pending:
                self._schedule(min(pending) + self.window - now)


def _summary(run: _Run, now: float) -> logging.LogRecord:
    """One line for the records held back: the latest one's text (first line), its exception type, the count."""
    last = run.last
    assert last is not None
    try:
        text = last.getMessage()
    except Exception:  # a bad format string: the template is still worth showing
        text = str(last.msg)
    text = text.splitlines()[0] if text else ""
    if last.exc_info and last.exc_info[0] is not None:
        text = f"{text} [{last.exc_info[0].__name__}]"
    span = now - run.started
    seconds = f"{span:.0f}" if span >= 10 else f"{span:.1f}"
    text = f"{text} (repeated {run.repeats:,} times in the last {seconds} s)"
    summary = logging.LogRecord(last.name, last.levelno, last.pathname, last.lineno, text, None, None, last.funcName)
    summary.thread, summary.threadName, summary.process = last.thread, last.threadName, last.process
    return summary


class LogRing(logging.Handler):
    """The daemon's recent log lines in memory, for the control API (`GET /v1/logs`) and the TUI's Log page.

    Bounded (`size` lines; the oldest go first) and numbered (`seq`, from 1), so a client asks for what came after
    the last line it has. A line is scrubbed before it is kept (`scrub`: every configured secret masked), so a
    secret never reaches the ring, whatever a module logged.
    """

    def __init__(self, size: int = 2000, scrub: Callable[[str], str] | None = None) -> None:
        super().__init__(logging.NOTSET)
        self.setFormatter(logging.Formatter("%(message)s"))
        self._lines: deque[LogLine] = deque(maxlen=size)
        self._seq = 0
        self._scrub = scrub or (lambda line: line)
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self._scrub(self.format(record))
        except Exception:  # a bad format string must not break logging
            text = str(record.msg)
        with self._lock_lines:
            self._seq += 1
            self._lines.append(LogLine(self._seq, record.created, record.levelname, record.name, text))

    def since(self, seq: int = 0, limit: int | None = None) -> list[LogLine]:
        """Lines numbered above `seq`, oldest first (at most the last `limit` of them)."""
        with self._lock_lines:
            lines = [line for line in self._lines if line.seq > seq]
        return lines[-limit:] if limit else lines

    @property
    def last_seq(self) -> int:
        return self._seq


@dataclass(frozen=True, slots=True)
class LogLine:
    seq: int
    at: float
    level: str  # DEBUG, INFO, WARNING, ERROR, CRITICAL
    logger: str
    message: str  # scrubbed; a traceback follows on the next lines
