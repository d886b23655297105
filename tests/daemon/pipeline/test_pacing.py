"""The per-recipient pacer: never more than a rate allows in any window, restarts included, memory bounded."""

from __future__ import annotations

from chatgpt_wecom.daemon.pipeline.pacing import Pacer, Rate
from tests.daemon_runner import FakeClock

WECOM = (Rate(30, 60.0), Rate(1000, 3600.0))


def test_thirty_a_minute_then_wait_for_the_oldest_to_leave_the_window() -> None:
    clock = FakeClock(1000.0)
    pacer = Pacer(WECOM, clock=clock)
    for _ in range(30):
        assert pacer.wait("alice") == 0
        pacer.record("alice")
        clock.advance(0.1)
    assert abs(pacer.wait("alice") - (61.0 - 3.0)) < 1e-6  # the first send leaves the window (60 s + 1 s slack) at 1061
    assert pacer.wait("bob") == 0  # per recipient


def test_sending_at_the_pace_it_says_never_exceeds_any_window() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer(WECOM, clock=clock)
    sent: list[float] = []
    while len(sent) < 1100:  # past the hourly limit as well
        clock.advance(pacer.wait("alice"))
        pacer.record("alice")
        sent.append(clock())
    for count, seconds in ((30, 60.0), (1000, 3600.0)):
        assert max(sum(1 for t in sent if start <= t < start + seconds) for start in sent) <= count
    assert sent[1000] - sent[0] >= 3600  # the hourly limit held the 1001st back


def test_sends_before_a_restart_still_count() -> None:
    clock = FakeClock(5000.0)
    pacer = Pacer([Rate(3, 10.0)], clock=clock)
    for at in (4995.0, 4996.0, 4997.0):
        pacer.seed("alice", at)
    assert pacer.wait("alice") == 4995.0 + 10.5 - 5000.0


def test_idle_recipients_are_forgotten() -> None:
    clock = FakeClock(0.0)
    pacer = Pacer([Rate(30, 60.0)], clock=clock)
    for n in range(1024):
        pacer.record(f"user{n}")
    assert pacer.tracked == 1024
    clock.advance(120)
    for _ in range(1024):  # another 1,024 sends sweep the idle ones out
        pacer.record("bob")
    assert pacer.tracked == 1


def test_no_rates_never_waits() -> None:
    pacer = Pacer([])
    pacer.record("alice")
    assert pacer.wait("alice") == 0
