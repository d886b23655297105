"""Conversation behaviour end to end: commands, 单聊/串聊 context, isolation, limits, persistence."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from chatgpt_wecom.config import Settings
from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom


def _roles(messages: list[dict[str, str]]) -> list[tuple[str, str]]:
    return [(m["role"], m["content"]) for m in messages]


async def test_help_is_the_configured_text(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, help="自定义帮助")
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "帮助", 1)
        assert await wecom.wait_for_sent(1, user="u1")
        assert wecom.texts_to("u1") == ["自定义帮助"]
    assert model.requests == []


async def test_single_mode_sends_no_context(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    await daemon.ask("u1", "第一个问题", 1)
    await wecom.wait_for_sent(1, user="u1")
    await daemon.ask("u1", "第二个问题", 2)
    await wecom.wait_for_sent(2, user="u1")
    assert _roles(model.requests[1].messages) == [("user", "第二个问题")]


async def test_thread_mode_sends_real_messages_and_reset_clears(
    daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom
) -> None:
    model.set_reply(lambda req: f"答：{req.last_user_text}")
    await daemon.ask("u1", "串聊", 1)
    await wecom.wait_for_sent(1, user="u1")
    assert "串聊" in wecom.texts_to("u1")[0]
    await daemon.ask("u1", "我叫小明", 2)
    await wecom.wait_for_sent(2, user="u1")
    await daemon.ask("u1", "我叫什么", 3)
    await wecom.wait_for_sent(3, user="u1")
    assert _roles(model.requests[-1].messages) == [
        ("user", "我叫小明"),
        ("assistant", "答：我叫小明"),
        ("user", "我叫什么"),
    ]
    await daemon.ask("u1", "重置", 4)
    await wecom.wait_for_sent(4, user="u1")
    await daemon.ask("u1", "还记得吗", 5)
    await wecom.wait_for_sent(5, user="u1")
    # 重置 also returns to the default mode (单聊): no context at all.
    assert _roles(model.requests[-1].messages) == [("user", "还记得吗")]


async def test_users_are_isolated(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    for user, n in (("alice", 10), ("bob", 20)):
        await daemon.ask(user, "串聊", n)
        await wecom.wait_for_sent(1, user=user)
        await daemon.ask(user, f"{user} 的秘密", n + 1)
        await wecom.wait_for_sent(2, user=user)
    await daemon.ask("alice", "刚才说了什么", 12)
    await wecom.wait_for_sent(3, user="alice")
    sent = " ".join(m["content"] for m in model.requests[-1].messages)
    assert "alice 的秘密" in sent and "bob" not in sent


async def test_default_mode_thread_and_session_timeout(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, default_mode="串聊", session_timeout=600)
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "一", 1)
        await wecom.wait_for_sent(1, user="u1")
        await daemon.ask("u1", "二", 2)
        await wecom.wait_for_sent(2, user="u1")
        assert len(model.requests[-1].messages) == 3
        _backdate_last_activity(settings, "u1", seconds=601)  # the user went quiet for longer than the timeout
        await daemon.ask("u1", "三", 3)
        await wecom.wait_for_sent(3, user="u1")
        assert _roles(model.requests[-1].messages) == [("user", "三")]


def _backdate_last_activity(settings: Settings, user: str, seconds: float) -> None:
    with sqlite3.connect(settings.database_path) as conn:
        conn.execute("UPDATE conversations SET last_active_at = last_active_at - ? WHERE user_id = ?", (seconds, user))


async def test_context_survives_a_restart(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, default_mode="串聊")
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "记住 42", 1)
        await wecom.wait_for_sent(1, user="u1")
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "我让你记住什么", 2)
        await wecom.wait_for_sent(2, user="u1")
    assert _roles(model.requests[-1].messages)[0] == ("user", "记住 42")


async def test_context_is_trimmed_oldest_first_to_max_text(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, default_mode="串聊", max_text=400)
    model.set_reply("好")
    async with DaemonRunner(settings) as daemon:
        for n in range(1, 8):
            await daemon.ask("u1", f"第{n}个问题" + "字" * 60, n)
            await wecom.wait_for_sent(n, user="u1")
    last = model.requests[-1].messages
    questions = [m["content"] for m in last if m["role"] == "user"]
    assert questions[-1].startswith("第7个问题")
    assert 1 < len(questions) < 7
    assert not any(q.startswith("第1个问题") for q in questions)  # the oldest went first
    numbers = [int(q[1]) for q in questions]
    assert numbers == sorted(numbers) and numbers[-2] == 6  # newest history kept, in order


async def test_too_long_question_is_refused_politely(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, max_question_len=10)
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "这是一个明显超过十个字的问题啊啊啊", 1)
        await wecom.wait_for_sent(1, user="u1")
    assert "10" in wecom.texts_to("u1")[0]
    assert model.requests == []


async def test_context_too_long_is_trimmed_and_retried_once(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, default_mode="串聊")
    async with DaemonRunner(settings) as daemon:
        await daemon.ask("u1", "很长的背景" * 20, 1)
        await wecom.wait_for_sent(1, user="u1")
        model.fail_when(
            lambda req: len(req.messages) > 1,
            400,
            {"error": {"message": "maximum context length exceeded", "code": "context_length_exceeded"}},
        )
        await daemon.ask("u1", "继续", 2)
        await wecom.wait_for_sent(2, user="u1")
    assert [len(r.messages) for r in model.requests[1:]] == [3, 1]
    assert wecom.texts_to("u1")[1].startswith("echo")


async def test_question_and_answer_are_stored_with_usage(
    daemon: DaemonRunner, settings: Settings, wecom: FakeWeCom
) -> None:
    await daemon.ask("u1", "你好", 1)
    await wecom.wait_for_sent(1, user="u1")
    with sqlite3.connect(settings.database_path) as conn:
        row = conn.execute(
            "SELECT user_id, mode, question, answer, model, prompt_tokens, completion_tokens, asked_at FROM exchanges"
        ).fetchone()
    user, mode, question, answer, model_name, prompt_tokens, completion_tokens, asked_at = row
    assert (user, mode, question) == ("u1", "单聊", "你好")
    assert answer and model_name and asked_at > 0
    assert prompt_tokens > 0 and completion_tokens > 0
