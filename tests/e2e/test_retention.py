"""Retention end to end: messages asked at T, the clock moved past retention_days, then `ctl prune` (dry and real)
and the daemon's own prune after a start — what goes, what stays, and a pruned message id still deduped."""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from chatgpt_wecom import protocol as p
from chatgpt_wecom.config import Settings
from tests.ctl.test_ctl import ok
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, FakeClock, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom

DAY = 86_400.0
RETENTION = 7
SEND = "/cgi-bin/message/send"
T = datetime(2026, 11, 2, 10, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()


def _db(settings: Settings, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    with sqlite3.connect(settings.database_path) as conn:
        return conn.execute(sql, params).fetchall()


def _dump(settings: Settings) -> list[str]:
    """Every row, but the tries of the part that is being retried meanwhile (only its id and content)."""
    with sqlite3.connect(settings.database_path) as conn:
        lines = [line for line in conn.iterdump() if not line.startswith('INSERT INTO "outbox"')]
        return lines + [repr(r) for r in conn.execute("SELECT id, inbox_id, part, content FROM outbox ORDER BY id")]


def _files(settings: Settings) -> list[str]:
    return sorted(f"{f.parent.name}/{f.name}" for f in settings.data_dir.glob("*/*") if f.parent.name != "control")


async def _answer(daemon: DaemonRunner, wecom: FakeWeCom, user: str, text: str, msg_id: int | None = None) -> str:
    """Ask as `user` and wait for the reply by its arrival (another user's answer may be stuck on purpose)."""
    before = len(wecom.texts_to(user))
    await daemon.ask(user, text, next(MSG_IDS) if msg_id is None else msg_id)
    await wait_until(lambda: len(wecom.texts_to(user)) > before, what=f"the answer to {user}")
    return wecom.texts_to(user)[-1]


async def test_ctl_prune_removes_what_is_old_and_finished_and_keeps_counts_audit_and_dedupe(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    clock = FakeClock(T)
    settings = make_settings(tmp_path, wecom, model, retention_days=RETENTION, max_request=50)
    sock = settings.socket_path
    async with DaemonRunner(settings, replace(FAST, clock=clock)) as daemon:
        old_id = next(MSG_IDS)
        assert await _answer(daemon, wecom, "u1", "旧问题", old_id) == "echo: 旧问题"
        await daemon.say("u1", "#图片 一只猫")
        assert _files(settings) and _files(settings)[0].startswith("images/")
        wecom.fail_when(SEND, lambda r: isinstance(r.json, dict) and r.json.get("touser") == "u2", status=503)
        await daemon.ask("u2", "送不出去", next(MSG_IDS))  # answered, never delivered: unfinished
        await wait_until(lambda: _db(settings, "SELECT 1 FROM outbox WHERE user_id = 'u2' AND attempts > 0"),
                         what="a try to deliver u2's answer")  # fmt: skip
        clock.advance((RETENTION + 1) * DAY)
        assert await _answer(daemon, wecom, "u3", "新问题") == "echo: 新问题"
        await wait_until(lambda: _db(settings, "SELECT state FROM inbox WHERE user_id = 'u3'") == [("done",)],
                         what="u3's message to be done")  # fmt: skip
        quota_counts = _db(settings, "SELECT * FROM quota_counts ORDER BY user_id")
        dump, files = _dump(settings), _files(settings)

        dry = (await ok(sock, "prune", "--dry-run")).lines
        dry_json = p.PruneReport.model_validate_json((await ok(sock, "--json", "prune", "--dry-run")).out)

        assert _dump(settings) == dump and _files(settings) == files  # a dry run changes nothing
        assert dry[0].startswith("would prune what was received before ") and "(over 7 days ago)" in dry[0]
        assert any(line.split()[:2] == ["messages", "2"] for line in dry)
        assert ["files", "1", f"({len(FakeModel.PNG)}", "B)"] in [line.split() for line in dry]
        assert (dry_json.messages, dry_json.exchanges, dry_json.files, dry_json.dry_run) == (2, 2, 1, True)
        assert dry_json.parts >= 2 and dry_json.oldest_kept == T and dry_json.newest_kept == clock.now

        done = p.PruneReport.model_validate_json((await ok(sock, "--json", "prune")).out)

        assert done.model_dump() == {**dry_json.model_dump(), "dry_run": False}  # what the dry run announced
        assert _files(settings) == []
        assert [q for (q,) in _db(settings, "SELECT question FROM exchanges ORDER BY id")] == ["送不出去", "新问题"]
        assert _db(settings, "SELECT user_id, content, payload FROM inbox WHERE pruned_at IS NOT NULL") == [
            ("u1", "", "{}"), ("u1", "", "{}"),
        ]  # fmt: skip
        assert _db(settings, "SELECT DISTINCT user_id FROM outbox ORDER BY 1") == [("u2",), ("u3",)]
        assert _db(settings, "SELECT * FROM quota_counts ORDER BY user_id") == quota_counts
        [(actor, target, after)] = _db(settings, "SELECT actor, target, after FROM audit WHERE action = 'prune'")
        assert actor.startswith("control") and target == "older than 7 days"
        assert json.loads(after)["messages"] == 2 and json.loads(after)["files"] == 1

        # A late retry of a pruned message is still a duplicate: acked, not answered again.
        asked = len(model.requests)
        await daemon.ask("u1", "旧问题", old_id)
        assert await _answer(daemon, wecom, "u1", "再问") == "echo: 再问"
        assert [r.last_user_text for r in model.requests[asked:]] == ["再问"]
        assert wecom.texts_to("u1").count("echo: 旧问题") == 1

        # The unfinished message was kept whole, and is finished once WeCom takes it.
        wecom.clear_failures()
        await daemon.idle()
        assert _db(settings, "SELECT state, content FROM inbox WHERE user_id = 'u2'") == [("done", "送不出去")]
        assert wecom.texts_to("u2") == ["echo: 送不出去"]


async def test_without_retention_nothing_is_pruned_and_with_it_the_daemon_prunes_after_start(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    clock = FakeClock(T)
    settings = make_settings(tmp_path, wecom, model)
    tuning = replace(FAST, clock=clock, prune_first_after=0.0)
    async with DaemonRunner(settings, tuning) as daemon:
        await daemon.say("u1", "旧问题")
        clock.advance(400 * DAY)
        assert (await ok(settings.socket_path, "prune")).lines == [
            "retention is off (retention_days is 0 or unset): nothing pruned; set it, or pass --days N"
        ]
        explicit = p.PruneReport.model_validate_json(
            (await ok(settings.socket_path, "--json", "prune", "--dry-run", "--days", "30")).out
        )
        assert (explicit.days, explicit.messages, explicit.exchanges) == (30, 1, 1)
    assert _db(settings, "SELECT count(*) FROM exchanges") == [(1,)]
    assert _db(settings, "SELECT count(*) FROM audit WHERE action = 'prune'") == [(0,)]

    caplog.set_level(logging.INFO, logger="chatgpt_wecom.daemon.pruner")

    def pruner_lines() -> list[str]:
        return [r.getMessage() for r in caplog.records if r.name == "chatgpt_wecom.daemon.pruner"]

    async with DaemonRunner(settings.model_copy(update={"retention_days": RETENTION}), tuning):
        # The log line is the prune's last act (its audit row is committed just before): stopping the daemon
        # between the two would cancel the line, so the wait is for the line.
        await wait_until(pruner_lines, what="the prune after start to be logged")
    assert _db(settings, "SELECT 1 FROM audit WHERE action = 'prune' AND actor = 'retention'") == [(1,)]
    assert _db(settings, "SELECT count(*) FROM exchanges") == [(0,)]
    [line] = pruner_lines()
    assert line.startswith("retention: pruned 1 message(s) received over 7 day(s) ago — 1 exchange(s)")
