"""RepeatLimiter: a flood of one kind of line is a few lines and a count; different lines always go through."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator

import pytest

from chatgpt_wecom.daemon.logs import RepeatLimiter


class Collect(logging.Handler):
    """The handler the limiter writes to: keeps the formatted lines."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.changed = threading.Condition()

    def emit(self, record: logging.LogRecord) -> None:
        with self.changed:
            self.lines.append(self.format(record))
            self.changed.notify_all()

    def wait_for(self, predicate: str, timeout: float = 5.0) -> list[str]:
        """Wait until a line contains `predicate` (the limiter's timer thread writes it)."""
        with self.changed:
            if not self.changed.wait_for(lambda: any(predicate in line for line in self.lines), timeout):
                raise AssertionError(f"no line with {predicate!r} within {timeout} s: {self.lines}")
            return list(self.lines)


@pytest.fixture
def collect() -> Collect:
    return Collect()


@pytest.fixture
def make_logger(collect: Collect) -> Iterator[tuple[logging.Logger, list[RepeatLimiter]]]:
    """A private logger whose only handler is a RepeatLimiter (made by the test) around `collect`."""
    logger = logging.getLogger(f"test.logs.{time.monotonic_ns()}")
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    limiters: list[RepeatLimiter] = []
    yield logger, limiters
    for limiter in limiters:
        logger.removeHandler(limiter)
        limiter.close()


def attach(logger: logging.Logger, limiters: list[RepeatLimiter], limiter: RepeatLimiter) -> RepeatLimiter:
    logger.addHandler(limiter)
    limiters.append(limiter)
    return limiter


def _fail(message: str) -> None:
    raise ValueError(message)


def test_repeats_are_counted_not_copied_and_the_count_is_reported(
    collect: Collect, make_logger: tuple[logging.Logger, list[RepeatLimiter]]
) -> None:
    logger, limiters = make_logger
    limiter = attach(logger, limiters, RepeatLimiter(collect, window=60.0, burst=1))
    for n in range(1_235):
        logger.warning("listener: closed a connection from %s", f"10.0.0.{n % 250}")
    assert collect.lines == ["listener: closed a connection from 10.0.0.0"]
    limiter.close()  # what logging.shutdown() does at exit: nothing held back is lost
    assert len(collect.lines) == 2
    assert re.fullmatch(
        r"listener: closed a connection from 10\.0\.0\.234 \(repeated 1,234 times in the last \d+\.\d s\)",
        collect.lines[1],
    ), collect.lines[1]


def test_different_lines_are_never_held_back(
    collect: Collect, make_logger: tuple[logging.Logger, list[RepeatLimiter]]
) -> None:
    logger, limiters = make_logger
    other = logging.getLogger(f"{logger.name}.other")  # propagates to `logger`'s limiter
    attach(logger, limiters, RepeatLimiter(collect, window=60.0, burst=1))
    sent = []
    for n in range(50):
        logger.info(f"line number {n}")  # fifty different templates on purpose
        sent.append(f"line number {n}")
    for level in (logging.DEBUG, logging.INFO, logging.WARNING, logging.ERROR):
        logger.log(level, "the same text at another level")
        other.log(level, "the same text at another level")  # and from another logger
        sent += ["the same text at another level"] * 2
    assert collect.lines == sent


def test_a_few_values_of_one_template_all_show_then_the_rest_is_counted(
    collect: Collect, make_logger: tuple[logging.Logger, list[RepeatLimiter]]
) -> None:
    logger, limiters = make_logger
    limiter = attach(logger, limiters, RepeatLimiter(collect, window=60.0))  # burst: 5 by default

    def migrate(number: int) -> None:
        logger.info("database: applying migration %d", number)  # one call site, like the real one

    for number in range(1, 5):
        migrate(number)
    assert collect.lines == [f"database: applying migration {n}" for n in range(1, 5)]
    for number in range(5, 101):
        migrate(number)
    assert len(collect.lines) == 5
    limiter.close()
    assert collect.lines[-1].startswith("database: applying migration 100 (repeated 95 times in the last ")


def test_tracebacks_of_one_type_from_one_place_are_one_kind(
    collect: Collect, make_logger: tuple[logging.Logger, list[RepeatLimiter]]
) -> None:
    logger, limiters = make_logger
    limiter = attach(logger, limiters, RepeatLimiter(collect, window=60.0, burst=1))
    for n in range(100):
        try:
            _fail(f"attempt {n}")  # a different message each time, from the same place
        except ValueError:
            logger.exception("socket.accept() out of system resource")
    empty: dict[str, int] = {}
    try:
        empty["missing"]  # another type of error under the same log line
    except KeyError:
        logger.exception("socket.accept() out of system resource")
    tracebacks = [line for line in collect.lines if "Traceback" in line]
    assert len(tracebacks) == 2
    assert "ValueError: attempt 0" in tracebacks[0] and "KeyError" in tracebacks[1]
    limiter.close()
    assert collect.lines[-1].startswith(
        "socket.accept() out of system resource [ValueError] (repeated 99 times in the last "
    )
    assert "Traceback" not in collect.lines[-1]  # a count, not a copy


def test_the_count_is_reported_when_the_window_closes_even_if_nothing_else_is_logged(
    collect: Collect, make_logger: tuple[logging.Logger, list[RepeatLimiter]]
) -> None:
    logger, limiters = make_logger
    attach(logger, limiters, RepeatLimiter(collect, window=0.2, burst=1))
    for _ in range(10):
        logger.error("model: the endpoint refused the connection")
    assert len(collect.lines) == 1
    lines = collect.wait_for("(repeated 9 times")
    assert lines[1].startswith("model: the endpoint refused the connection (repeated 9 times in the last 0.")
    logger.error("model: the endpoint refused the connection")  # a new window: written again
    assert len(collect.lines) == 3


def test_beyond_max_kinds_records_simply_go_through(
    collect: Collect, make_logger: tuple[logging.Logger, list[RepeatLimiter]]
) -> None:
    logger, limiters = make_logger
    attach(logger, limiters, RepeatLimiter(collect, window=60.0, burst=1, max_kinds=3))
    for n in range(4):
        logger.info(f"kind {n}")  # four templates on purpose
    for _ in range(3):
        logger.info("kind 3")  # not tracked: never held back
    assert collect.lines == ["kind 0", "kind 1", "kind 2", "kind 3", "kind 3", "kind 3", "kind 3"]
