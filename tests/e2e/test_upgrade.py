"""Upgrading from release 0.1.0: its database (tests/data/release-0.1.0.sql, made by that release's own stores) is
migrated on start with everything kept — a user's mode and 串聊 context, today's quota count, the history, the
access lists, the pause, a message still waiting for its answer, and the dedupe of WeCom's retries."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from tests.daemon_runner import FAST, DaemonRunner, FakeClock, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

FIXTURE = Path(__file__).resolve().parent.parent / "data" / "release-0.1.0.sql"
T = 1_795_000_000.0  # when the fixture's conversation happened (2026-11-18, Asia/Shanghai)


async def test_a_release_0_1_0_database_keeps_everything(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, max_request=3)
    settings.data_dir.mkdir(parents=True)
    with sqlite3.connect(settings.database_path) as conn:
        conn.executescript(FIXTURE.read_text())
    tuning = replace(FAST, clock=FakeClock(T + 180))  # three minutes later: the same day, the same 串聊 session

    async with DaemonRunner(settings, tuning) as daemon:
        services = daemon.services
        assert services is not None
        assert (await services.operator.status()).paused  # the operator's pause survived the upgrade
        # The directory knows who wrote before the upgrade, and by which channel their latest message came.
        people = {person.user_id: person for person in await services.directory.people(0, "2026-11-18")}
        assert (people["zhangsan"].channel, people["zhangsan"].last_seen) == ("wecom", 1795000060.0)
        assert people["lisi"].channel == "wecom"
        # The message accepted before the upgrade and never answered is answered now, once (paused: the notice).
        await wecom.wait_for_sent(1, user="lisi")
        assert wecom.texts_to("lisi") == [settings.pause_notice]
        await services.operator.resume("test")

        await daemon.say("zhangsan", "继续")  # 串聊: the two earlier exchanges come along as context
        asked = model.requests[-1].messages
        assert [m["content"] for m in asked if m["role"] != "system"][:4] == [
            "什么是WAL", "WAL 是预写日志。", "那fsync呢", "fsync 把数据刷到磁盘。",
        ]  # fmt: skip
        await daemon.say("zhangsan", "再问一个")  # two were counted before the upgrade: this is the fourth
        assert "上限" in wecom.texts_to("zhangsan")[-1] or "额度" in wecom.texts_to("zhangsan")[-1]

        # WeCom retrying a message from before the upgrade is still a duplicate.
        assert await daemon.post(daemon.signer.text("zhangsan", "什么是WAL", 7001)) == (200, "")
        history = await services.history.of_user("zhangsan")
        assert [e.question for e in history][:2] == ["什么是WAL", "那fsync呢"]
        assert services.policy.lists.unlimited("wangwu")  # the VIP list
        await daemon.idle()
    assert len([r for r in model.requests if r.last_user_text == "什么是WAL"]) == 0


async def test_a_message_of_a_channel_no_longer_configured_waits_with_one_clear_line(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings):
        pass  # the database exists, migrated
    with sqlite3.connect(settings.database_path) as conn:  # a message that came by a channel since removed
        conn.execute("INSERT INTO inbox (dedupe_key, user_id, msg_type, content, received_at, channel, namespace, chat)"
                     " VALUES ('gone:m1', 'alice', 'text', '你好', 0, 'gone', 'gone', 'alice')")  # fmt: skip
    async with DaemonRunner(settings) as daemon:
        await daemon.idle()
    lines = [r for r in caplog.records if "not configured now" in r.getMessage()]
    assert len(lines) == 1 and lines[0].levelname == "WARNING"
    assert not [r for r in caplog.records if r.exc_info]  # no traceback
    with sqlite3.connect(settings.database_path) as conn:
        assert conn.execute("SELECT state FROM inbox WHERE dedupe_key = 'gone:m1'").fetchone() == ("pending",)
    assert model.requests == [] and wecom.sent == []
