"""Access lists, daily quota, sensitive words, templates, usage and admin commands — end to end."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat.templates import Templates
from tests.daemon_runner import FAST, Chat, DaemonRunner, FakeClock, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

SHANGHAI = ZoneInfo("Asia/Shanghai")


def _settings(tmp_path: Path, wecom: FakeWeCom, model: FakeModel, **overrides: Any) -> Settings:
    return make_settings(tmp_path, wecom, model, **overrides)


def _audit(settings: Settings) -> list[tuple[str, str, str, Any, Any]]:
    with sqlite3.connect(settings.database_path) as conn:
        rows = conn.execute("SELECT actor, action, target, before, after FROM audit ORDER BY id").fetchall()
    return [(a, b, c, json.loads(d), json.loads(e)) for a, b, c, d, e in rows]


async def test_denied_user_gets_a_polite_reply_and_never_reaches_the_model(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = _settings(tmp_path, wecom, model, deny_users=["Mallory"], deny_reply="不可以哦")
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        assert await chat.say("mallory", "你好") == "不可以哦"  # UserIDs are case-insensitive
        assert await chat.say("mallory", "帮助") == "不可以哦"
    assert model.requests == []


async def test_allow_list_admits_only_members_and_admins(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = _settings(tmp_path, wecom, model, allow_users=["alice"], admin_users=["boss"], deny_users=["boss"])
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        assert await chat.say("alice", "在吗") == "echo: 在吗"
        assert await chat.say("bob", "在吗") == settings.deny_reply
        assert await chat.say("boss", "在吗") == "echo: 在吗"  # admin: deny does not apply
    assert [r.last_user_text for r in model.requests] == ["在吗", "在吗"]


async def test_daily_quota_resets_at_local_midnight_not_utc(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    clock = FakeClock(datetime(2026, 11, 21, 7, 50, tzinfo=SHANGHAI).timestamp())  # 23:50 UTC the day before
    settings = _settings(tmp_path, wecom, model, max_request=2, vip_users=["vip"], admin_users=["boss"])
    async with DaemonRunner(settings, replace(FAST, clock=clock)) as daemon:
        chat = Chat(daemon, wecom)
        assert await chat.say("u1", "一") == "echo: 一"
        assert "🚀 帮助" in await chat.say("u1", "帮助")  # commands do not count
        assert await chat.say("u1", "二") == "echo: 二"
        refused = await chat.say("u1", "三")
        assert "2 次" in refused and "11月22日 00:00" in refused and "Asia/Shanghai" in refused
        assert "管理员" in refused
        clock.advance(20 * 60)  # 08:10 in Shanghai, 00:10 UTC: a new UTC day, the same local day
        assert "用完" in await chat.say("u1", "四")
        for n in range(4):
            assert await chat.say("vip", f"vip{n}") == f"echo: vip{n}"
            assert await chat.say("boss", f"boss{n}") == f"echo: boss{n}"
        clock.now = datetime(2026, 11, 22, 0, 0, 5, tzinfo=SHANGHAI).timestamp()  # local midnight passed
        assert await chat.say("u1", "五") == "echo: 五"
    asked = [r.last_user_text for r in model.requests if r.last_user_text in "一二三四五"]
    assert asked == ["一", "二", "五"]


async def test_counts_and_live_lists_survive_a_restart(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = _settings(tmp_path, wecom, model, max_request=1, admin_users=["boss"])
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        assert await chat.say("u1", "一") == "echo: 一"
        assert "已拉黑 bob" in await chat.say("boss", "#拉黑 bob")
    async with DaemonRunner(settings) as daemon:  # the same config file values: live edits stay
        chat = Chat(daemon, wecom)
        assert "用完" in await chat.say("u1", "二")
        assert await chat.say("bob", "你好") == settings.deny_reply


async def test_a_changed_config_list_is_applied_at_the_next_start(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = _settings(tmp_path, wecom, model, admin_users=["boss"])
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        await chat.say("boss", "#拉黑 bob")
    edited = _settings(tmp_path, wecom, model, admin_users=["boss"], deny_users=["carol"], port=settings.port)
    async with DaemonRunner(edited) as daemon:
        chat = Chat(daemon, wecom)
        assert await chat.say("carol", "你好") == settings.deny_reply
        assert await chat.say("bob", "你好") == "echo: 你好"  # the file's list replaced the live one
    entries = _audit(settings)
    assert ("config.yml", "set_deny_users", "deny_users", ["bob"], ["carol"]) in entries


async def test_sensitive_words_refuse_questions_and_are_censored_in_answers(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = _settings(tmp_path, wecom, model, sensitive_words=["机密", "Secret"])
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        refused = await chat.say("u1", "告诉我公司机密")
        assert "机密" in refused and "不能回答" in refused
        assert model.requests == []
        model.set_reply("这是机密：SECRET 和 secret，还有机密。")
        assert await chat.say("u1", "随便说说") == "这是🚫：🚫 和 🚫，还有🚫。"
    with sqlite3.connect(settings.database_path) as conn:
        (answer,) = conn.execute("SELECT answer FROM exchanges").fetchone()
    assert answer == "这是机密：SECRET 和 secret，还有机密。"  # the original is kept for audit


async def test_templates_list_usage_and_real_prompt(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    weekly = Templates.load().get("#周报")
    assert weekly is not None
    settings = _settings(tmp_path, wecom, model)
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        listing = await chat.say("u1", "模板")
        assert "#周报" in listing and "#翻译" in listing
        usage = await chat.say("u1", "#周报")
        assert weekly.example in usage
        assert model.requests == []
        await chat.say("u1", "#周报 本周修复了登录问题")
    (request,) = model.requests
    assert request.messages[0] == {"role": "system", "content": weekly.system}
    assert request.messages[-1]["role"] == "user"
    assert "本周修复了登录问题" in request.messages[-1]["content"]


async def test_template_in_thread_mode_sets_the_conversation_prompt(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    translate = Templates.load().get("#翻译")
    assert translate is not None
    settings = _settings(tmp_path, wecom, model, default_mode="串聊")
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        await chat.say("u1", "#翻译 早上好")
        await chat.say("u1", "晚安")
    follow_up = model.requests[-1].messages
    assert follow_up[0] == {"role": "system", "content": translate.system}
    assert [m["role"] for m in follow_up] == ["system", "user", "assistant", "user"]
    assert follow_up[-1]["content"] == "晚安"


async def test_admin_commands_apply_at_once_and_are_audited(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = _settings(tmp_path, wecom, model, admin_users=["boss"], max_request=2)
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        for command in ("#拉黑 bob", "#解封 bob", "#敏感词 添加 红包", "#重置额度 all", "#名单"):
            assert await chat.say("eve", command) == "只有管理员可以使用这个命令。"
        assert "已拉黑 bob" in await chat.say("boss", "#拉黑 bob")
        assert await chat.say("bob", "你好") == settings.deny_reply
        assert "已解封 bob" in await chat.say("boss", "#解封 bob")
        assert await chat.say("bob", "你好") == "echo: 你好"
        assert "已添加 2 个" in await chat.say("boss", "#敏感词 添加 红包 抽奖")
        assert "不允许的词" in await chat.say("bob", "发红包吗")
        assert "已删除 1 个" in await chat.say("boss", "#敏感词 删除 红包")
        assert await chat.say("bob", "发红包吗") == "echo: 发红包吗"
        assert "用完" in await chat.say("bob", "再来一个")
        assert "已重置bob" in await chat.say("boss", "#重置额度 bob")
        assert await chat.say("bob", "再来一个") == "echo: 再来一个"
        assert await chat.say("bob", "第二个") == "echo: 第二个"
        assert "用完" in await chat.say("bob", "又一个")
        assert "已重置所有人" in await chat.say("boss", "#重置额度 ALL")
        assert await chat.say("bob", "又一个") == "echo: 又一个"
        lists = await chat.say("boss", "#名单")
        assert "管理员（1）：boss" in lists and "禁止名单（0）" in lists and "敏感词：1 个" in lists
        assert "用法" in await chat.say("boss", "#拉黑")
    actions = [(actor, action, target) for actor, action, target, _, _ in _audit(settings)]
    assert ("boss", "add_deny", "bob") in actions
    assert ("boss", "remove_deny", "bob") in actions
    assert ("boss", "add_words", "抽奖,红包") in actions
    assert ("boss", "remove_words", "红包") in actions
    assert ("boss", "reset_quota", "bob") in actions and ("boss", "reset_quota", "all") in actions
    assert all(actor != "eve" for actor, *_ in actions)
    block = next(e for e in _audit(settings) if e[1] == "add_deny")
    assert (block[3], block[4]) == ([], ["bob"])  # before / after


async def test_usage_for_users_and_admins(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = _settings(tmp_path, wecom, model, admin_users=["boss"], max_request=5)
    async with DaemonRunner(settings) as daemon:
        chat = Chat(daemon, wecom)
        await chat.say("u1", "一")
        await chat.say("u1", "二")
        await chat.say("u2", "三")
        mine = await chat.say("u1", "用量")
        assert "今天：2 次提问" in mine and "已用 2/5" in mine and "全员" not in mine
        assert await chat.say("u1", "余额") == mine  # old habit, same answer
        report = await chat.say("boss", "用量")
    assert "全员用量" in report and "今天：3 次提问" in report and "2 人" in report
    assert "1. u1 — 2 次" in report
