"""The TUI's pure parts (live log folding, formats, word splitting), its factory, and its import boundary."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC
from pathlib import Path

import pytest
from textual.app import App
from textual.pilot import Pilot

from chatgpt_wecom.protocol import Event, Exchange
from chatgpt_wecom.tui import SCREEN_NAMES, OperatorApp, make_app, run_tui
from chatgpt_wecom.tui.formats import Formats, duration, one_line, tokens
from chatgpt_wecom.tui.live import LiveLog
from chatgpt_wecom.tui.screens.history import default_export_path
from chatgpt_wecom.tui.screens.words import split_words


def ev(seq: int, kind: str, **data: object) -> Event:
    return Event(seq=seq, kind=kind, at=1_700_000_000.0 + seq, data=data)


def lifecycle(inbox_id: int, user: str = "alice") -> list[Event]:
    n = inbox_id * 10
    return [
        ev(n, "message.received", user=user, inbox_id=inbox_id, text=f"q{inbox_id}", channel="dingtalk", chat="g1"),
        ev(n + 1, "answer.started", user=user, inbox_id=inbox_id, mode="单聊"),
        ev(n + 2, "answer.finished", user=user, inbox_id=inbox_id, latency=1.5, prompt_tokens=7, completion_tokens=9),
        ev(n + 3, "reply.stored", user=user, inbox_id=inbox_id, parts=2, text=f"a{inbox_id}"),
        ev(n + 4, "delivery.sent", user=user, inbox_id=inbox_id, part=0),
    ]


def test_live_log_folds_a_message_lifecycle() -> None:
    log = LiveLog()
    events = lifecycle(1)
    changes = log.ingest(events)
    assert changes.touched == [1] and changes.evicted == []
    row = log.rows[1]
    assert (row.user, row.question, row.mode, row.answer) == ("alice", "q1", "单聊", "a1")
    assert (row.channel, row.chat, row.msg_type) == ("dingtalk", "g1", "text")
    assert (row.latency, row.prompt_tokens, row.completion_tokens) == (1.5, 7, 9)
    assert row.state == "sent 1/2"
    log.ingest([ev(20, "delivery.sent", inbox_id=1, part=1), ev(21, "message.done", inbox_id=1)])
    assert row.state == "done"
    assert not log.ingest([ev(22, "policy.changed", actor="x")])  # no inbox id: nothing touched


def test_live_log_marks_failures_and_model_errors() -> None:
    log = LiveLog()
    log.ingest([*lifecycle(1)[:4], ev(30, "delivery.failed", inbox_id=1, part=0, error="60020", final=True)])
    assert (log.rows[1].state, log.rows[1].error) == ("failed", "60020")
    log.ingest([ev(31, "message.done", inbox_id=1)])
    assert log.rows[1].state == "failed"  # done does not hide a failure
    log.ingest([*lifecycle(2)[:2], ev(32, "error", source="model", inbox_id=2, error="timeout")])
    assert (log.rows[2].state, log.rows[2].error) == ("error", "timeout")


def test_live_log_is_bounded_and_ignores_late_events_of_evicted_rows() -> None:
    log = LiveLog(limit=3)
    for inbox_id in range(1, 6):
        changes = log.ingest(lifecycle(inbox_id)[:1])
    assert list(log.rows) == [3, 4, 5]
    assert changes.evicted == [2]
    assert not log.ingest([ev(99, "message.done", inbox_id=1)])  # evicted long ago: not resurrected
    assert list(log.rows) == [3, 4, 5]
    # A burst bigger than the log in one batch: evicted rows are not reported as touched.
    changes = log.ingest([e for i in range(6, 12) for e in lifecycle(i)[:1]])
    assert changes.touched == [9, 10, 11] and list(log.rows) == [9, 10, 11]
    log.clear()
    assert len(log) == 0 and not log.ingest([ev(100, "reply.stored", inbox_id=10, text="late")])


def stored(inbox_id: int, answer: str | None = "ok", error: str | None = None) -> Exchange:
    return Exchange(
        id=inbox_id, inbox_id=inbox_id, user_id="bob", mode="单聊", question=f"q{inbox_id}", answer=answer, error=error,
        model="m", prompt_tokens=3, completion_tokens=4, asked_at=100.0, answered_at=102.5, namespace="wecom",
        chat="bob",
    )  # fmt: skip


def test_live_log_settles_rows_from_stored_exchanges_after_a_gap() -> None:
    log = LiveLog(limit=4)
    log.ingest([*lifecycle(1)[:2], *lifecycle(2, "carol"), ev(40, "message.done", inbox_id=2)])  # 1 answering
    log.ingest(lifecycle(3)[:1])
    changes = log.settle([stored(1, "the answer"), stored(2, "other"), stored(3, None, "timeout"), stored(4)])
    assert changes.touched == [1, 3, 4]  # 2 was done: its events said more than the exchange can
    assert (log.rows[1].state, log.rows[1].answer, log.rows[1].latency) == ("answered", "the answer", 2.5)
    assert (log.rows[1].question, log.rows[1].channel) == ("q1", "dingtalk")  # what its events said stays
    assert (log.rows[2].state, log.rows[2].answer) == ("done", "a2")
    assert (log.rows[3].state, log.rows[3].error) == ("error", "timeout")
    row = log.rows[4]  # never seen: a row from the stored exchange
    assert (row.user, row.question, row.channel, row.chat, row.state) == ("bob", "q4", "wecom", "bob", "answered")
    log.settle([stored(5)])  # bounded like events
    assert list(log.rows) == [2, 3, 4, 5] and not log.settle([stored(1)])  # evicted: not resurrected


def test_formats() -> None:
    utc = Formats(tz=UTC)
    assert utc.clock(0) == "00:00:00" and utc.stamp(86400 + 61) == "1970-01-02 00:01:01"
    assert Formats(fixed_time="12:00:00").clock(123456) == "12:00:00"
    assert [duration(s) for s in (5, 65, 7260, 90000)] == ["5s", "1m 05s", "2h 01m", "1d 01h"]
    assert tokens(None, None) == "" and tokens(3, None) == "3+0"
    assert one_line("a\n b   c", 10) == "a b c" and one_line("abcdefghijk", 5) == "abcd…"


def test_split_words_and_export_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert split_words("spam，scam, ham、 eggs\nbacon,, ") == ["spam", "scam", "ham", "eggs", "bacon"]
    monkeypatch.setenv("HOME", str(tmp_path))  # exports go to the operator's home, not the working folder
    assert default_export_path("Zhang.San") == str(tmp_path / "history-Zhang.San.md")
    assert default_export_path("../etc/x y") == str(tmp_path / "history-_etc_x_y.md")  # no "/", no leading dots
    assert default_export_path(".hidden") == str(tmp_path / "history-hidden.md")
    assert default_export_path("...") == str(tmp_path / "history-user.md")
    assert default_export_path("张三") == str(tmp_path / "history-张三.md")


@pytest.mark.parametrize(("crash", "code"), [(False, 0), (True, 1)])
def test_run_tui_returns_the_apps_return_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: bool, code: int
) -> None:
    """The real `run_tui`, its app run headless: quitting is 0, a crash in the UI is non-zero."""

    async def operator(pilot: Pilot[object]) -> None:
        await pilot.pause()
        if crash:
            pilot.app.call_later(boom)
            await pilot.pause(0.2)
        await pilot.press("ctrl+q")

    monkeypatch.setattr(OperatorApp, "run", lambda app: App.run(app, headless=True, auto_pilot=operator))
    assert run_tui(tmp_path / "control.sock") == code


def boom() -> None:
    raise RuntimeError("the UI broke")


def test_factory_names_the_screens_and_refuses_unknown_ones(tmp_path: Path) -> None:
    assert SCREEN_NAMES == ("live", "users", "words", "quotas", "history", "playground", "status", "log")
    app = make_app(tmp_path / "control.sock", screen="status")
    assert app.first_page == "status" and set(app.pages) == set(SCREEN_NAMES)
    with pytest.raises(ValueError, match="unknown screen 'nope'; one of: live, users"):
        make_app(tmp_path / "control.sock", screen="nope")


def test_the_tui_never_imports_the_daemon() -> None:
    code = (
        "import sys, chatgpt_wecom.tui, chatgpt_wecom.tui.app;"
        "bad = sorted(m for m in sys.modules if m.startswith('chatgpt_wecom.daemon'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
