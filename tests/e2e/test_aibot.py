"""The WeCom AI bot end to end: the real daemon on a fake AI-bot server (ws:// on loopback) and a fake model."""

from __future__ import annotations

import base64
import itertools
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from Crypto.Cipher import AES

from chatgpt_wecom.daemon.channels.wecom_bot import stream as stream_module
from chatgpt_wecom.daemon.services import Services
from tests.aibot_runner import BOT_FAST, QUICK, bot_settings
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel, tiny_png
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot


def encrypt_media(data: bytes, aeskey: str) -> bytes:
    """As WeCom stores a user's file: AES-256-CBC, iv = key[:16], PKCS#7 padded to 32 bytes."""
    key = base64.b64decode(aeskey)
    pad = 32 - len(data) % 32
    return AES.new(key, AES.MODE_CBC, key[:16]).encrypt(data + bytes([pad]) * pad)


@pytest.fixture
async def bot() -> AsyncIterator[FakeAIBot]:
    async with FakeAIBot() as fake:
        yield fake


async def test_a_private_question_is_answered_in_place(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    answer = "".join(f"第{n}句话。" for n in range(40))
    model.set_reply(answer)
    model.set_stream(chunk_chars=10, chunk_delay=0.02)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await bot.wait_for(lambda: bot.subscribed, what="a subscribe")
        req_id, msgid = await bot.push_text("alice", "讲个故事")
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
    assert stream.text == answer
    assert stream.id == f"s_{msgid}" and stream.feedback_id == msgid
    assert stream.contents[0] == "思考中…"
    assert len(stream.contents) > 3  # it grew in place
    grown = stream.contents[1:]
    assert all(answer.startswith(c) for c in grown), grown  # cumulative: each frame the whole text so far
    assert bot.sent == [] and not bot.late_frames
    ways = [f.way for f in bot.frames if f.req_id == req_id]
    assert ways[0] == "out" and ways[1:] == ["in", "out"] * (len(ways) // 2)  # one at a time, each acked first
    sent = [f.at for f in bot.sent_frames("aibot_respond_msg")]
    assert all(b - a >= QUICK.frame_interval * 0.9 for a, b in itertools.pairwise(sent[1:-1]))


async def running(daemon: DaemonRunner, bot: FakeAIBot) -> Services:
    await bot.wait_for(lambda: bot.subscribed, what="a subscribe")
    assert daemon.services is not None
    return daemon.services


async def test_in_a_group_the_mention_is_stripped_and_each_person_has_their_own_context(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        for user in ("alice", "bob"):
            await bot.push_text(user, "@RobotA 串聊", chat="wrGROUP1")
        await bot.push_text("alice", "@RobotA\u2005问题一", chat="wrGROUP1")
        await bot.push_text("bob", "@RobotA 问题二", chat="wrGROUP1")
        last, _ = await bot.push_text("alice", "@RobotA 问题三", chat="wrGROUP1")
        await bot.push_text(
            "alice", "@RobotA", chat="wrGROUP1", quote={"msgtype": "text", "text": {"content": "引用的话"}}
        )
        await bot.wait_finished(last)
        await daemon.idle()
    asked = {r.last_user_text: [m["content"] for m in r.messages if m["role"] == "user"] for r in model.requests}
    assert asked["问题三"] == ["问题一", "问题三"]  # alice's own thread in the group: not bob's question
    assert asked["问题二"] == ["问题二"]
    assert "引用的话" in asked
    assert (await bot.wait_finished(last)).text == "echo: 问题三"
    assert bot.sent == []


async def test_a_repeated_msgid_is_answered_once(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        first, msgid = await bot.push_text("alice", "你好")
        await bot.wait_finished(first)
        again, _ = await bot.push_text("alice", "你好", msgid=msgid)  # the server's repeat of one callback
        await daemon.idle()
        later, _ = await bot.push_text("alice", "再见")  # the next message proves the repeat was read and dropped
        await bot.wait_finished(later)
    assert len(model.requests) == 2
    assert bot.streams_of(again) == [] and bot.sent == []


async def test_an_answer_longer_than_a_stream_goes_on_in_messages_with_nothing_lost(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    answer = "\n\n".join(f"第{n}段：" + "长" * 300 for n in range(60))  # ~55 KB
    model.set_reply(answer)
    model.set_stream(chunk_chars=2000)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push_text("alice", "写长文")
        await bot.wait_finished(req_id)
        await daemon.idle()
    (stream,) = bot.streams_of(req_id)
    assert all(len(c.encode()) <= 20480 for c in stream.contents)
    assert len(bot.markdowns("alice")) >= 2
    assert all(len(m.encode()) <= 20480 for m in bot.markdowns("alice"))
    assert bot.seen(req_id, "alice").replace("\n", "") == answer.replace("\n", "")


async def test_a_sensitive_word_is_censored_in_every_frame(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    model.set_reply("开头。" * 20 + "这是机密词。" + "结尾。" * 20)
    model.set_stream(chunk_chars=5, chunk_delay=0.01)
    settings = bot_settings(tmp_path, wecom, model, bot, sensitive_words=["机密词"])
    async with DaemonRunner(settings, BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push_text("alice", "说吧")
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
    assert len(stream.contents) > 3
    assert not any("机密" in c for c in stream.contents), stream.contents
    assert "🚫" in stream.text


async def test_one_person_has_one_quota_on_the_app_and_the_ai_bot(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    settings = bot_settings(tmp_path, wecom, model, bot, app=True, max_request=1)
    async with DaemonRunner(settings, BOT_FAST) as daemon:
        await running(daemon, bot)
        await daemon.say("alice", "第一个")  # the app
        req_id, _ = await bot.push_text("alice", "第二个")  # the AI bot: the same person
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
    assert wecom.texts_to("alice") == ["echo: 第一个"]
    assert "上限" in stream.text or "额度" in stream.text or "用完" in stream.text, stream.text
    assert len(model.requests) == 1


async def test_enter_chat_gets_the_welcome_and_feedback_is_stored(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    settings = bot_settings(tmp_path, wecom, model, bot, wecom_bot_welcome="欢迎使用")
    async with DaemonRunner(settings, BOT_FAST) as daemon:
        await running(daemon, bot)
        event = await bot.push_event("enter_chat", "alice")
        await bot.wait_for(lambda: any(f.req_id == event for f in bot.sent_frames("aibot_respond_welcome_msg")))
        req_id, msgid = await bot.push_text("alice", "你好")
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
        await bot.push_event("feedback_event", "alice", {"id": stream.feedback_id, "type": 2, "content": "不对",
                                                         "inaccurate_reason_list": [1, 3]})  # fmt: skip

        def stored() -> list[tuple[str, str, str, str]]:
            with sqlite3.connect(settings.database_path) as conn:
                return conn.execute("SELECT answer_id, rating, comment, reasons FROM feedback").fetchall()

        await bot.wait_for(lambda: bool(stored()), what="the feedback stored")
        assert daemon.services is not None
        assert (await daemon.services.operator.status()).feedback == {"good": 0, "bad": 1}  # counted
    (welcome,) = bot.sent_frames("aibot_respond_welcome_msg")
    assert welcome.body == {"msgtype": "text", "text": {"content": "欢迎使用"}}
    assert stored() == [(msgid, "bad", "不对", "[1, 3]")]


async def test_a_picture_is_decrypted_and_read_by_the_vision_model(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    png = tiny_png()
    aeskey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="  # §9.1's key
    url = bot.serve_media(encrypt_media(png, aeskey))
    settings = bot_settings(tmp_path, wecom, model, bot, vision_model="gpt-4o")
    async with DaemonRunner(settings, BOT_FAST) as daemon:
        await running(daemon, bot)
        first, _ = await bot.push("image", "alice", {"url": url, "aeskey": aeskey})
        await bot.wait_finished(first)
        second, _ = await bot.push_text("alice", "图里有什么")
        await bot.wait_finished(second)
        await daemon.idle()
    (vision,) = [r for r in model.requests if r.kind == "chat"]
    assert vision.json["model"] == "gpt-4o" and vision.last_user_text == "图里有什么"
    assert vision.images == ["data:image/png;base64," + base64.b64encode(png).decode()]


async def test_a_mixed_message_asks_about_its_picture(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    png = tiny_png()
    aeskey = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"  # without its "=": also taken
    url = bot.serve_media(encrypt_media(png, aeskey + "="))
    mixed = {"msg_item": [{"msgtype": "text", "text": {"content": "@RobotA 这是什么"}},
                          {"msgtype": "image", "image": {"url": url, "aeskey": aeskey}}]}  # fmt: skip
    settings = bot_settings(tmp_path, wecom, model, bot, vision_model="gpt-4o")
    async with DaemonRunner(settings, BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push("mixed", "alice", mixed, chat="wrGROUP1")
        await bot.wait_finished(req_id)
        await daemon.idle()
    (vision,) = [r for r in model.requests if r.kind == "chat"]
    assert vision.last_user_text == "这是什么" and len(vision.images) == 1
    # One reply, the answer, in place: no "picture received, now ask about it" for a picture that came with its question
    (stream,) = bot.streams_of(req_id)
    assert stream.finished and stream.text == "echo: 这是什么"
    assert bot.sent == []


async def test_a_file_is_not_supported_yet(tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push("file", "alice", {"url": "http://127.0.0.1:9/x", "aeskey": "x"})
        stream = await bot.wait_finished(req_id)
    assert "不支持" in stream.text or "暂" in stream.text, stream.text
    assert model.requests == []


async def test_a_drawn_image_is_uploaded_in_chunks_and_sent(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    big = tiny_png() + bytes(700 * 1024)  # two chunks
    model.set_image(big)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push_text("alice", "#图片 一只橘猫")
        await bot.wait_for(lambda: any(b["msgtype"] == "image" for b in bot.sent), what="the image sent")
        await daemon.idle()
    chunks = bot.sent_frames("aibot_upload_media_chunk")
    assert sorted(f.body["chunk_index"] for f in chunks) == [0, 1]
    (image,) = [b for b in bot.sent if b["msgtype"] == "image"]
    assert bot.media[image["image"]["media_id"]] == big
    (stream,) = bot.streams_of(req_id)
    assert stream.finished and stream.text.strip()  # the bubble is closed with visible text


@pytest.mark.parametrize("errcode", [846608, 846605])
async def test_a_stream_the_server_refuses_is_delivered_as_a_message(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot, errcode: int
) -> None:
    model.set_reply("一段完整的回答。")
    model.set_stream(chunk_chars=2, chunk_delay=0.02)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        bot.fail("aibot_respond_msg", errcode, times=1000)
        await bot.push_text("alice", "问")
        await bot.wait_for(lambda: bool(bot.markdowns("alice")), what="the answer as a message")
        await daemon.idle()
    assert bot.markdowns("alice") == ["一段完整的回答。"]


async def test_status_shows_the_connection(tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        services = await running(daemon, bot)
        await bot.wait_for(lambda: services.channels["wecom_bot"].detail()["last_ping_rtt_ms"] is not None)
        status = await services.operator.status()
    (channel,) = status.channels
    assert channel.name == "wecom_bot" and channel.up and channel.since and channel.reconnects == 0
    assert channel.detail["kicked"] is False and channel.detail["last_ping_rtt_ms"] >= 0
    assert channel.detail["bot_id"] == bot.bot_id and channel.detail["ws_url"] == bot.ws_url.rstrip("/")
    assert status.wecom_app is None and bot.secret not in status.model_dump_json()


@pytest.mark.parametrize("errcode", [846609, 6000])
async def test_a_busy_or_unsubscribed_answer_is_retried_with_nothing_lost(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot, errcode: int
) -> None:
    answer = "\n\n".join(f"第{n}段：" + "长" * 300 for n in range(30))  # ~27 KB: a finish frame and a message
    model.set_reply(answer)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        bot.fail("aibot_send_msg", errcode, times=2)
        req_id, _ = await bot.push_text("alice", "写长文")
        await bot.wait_for(lambda: bool(bot.markdowns("alice")), what="the rest as a message")
        await daemon.idle()
    assert len(bot.sent_frames("aibot_send_msg")) == 3  # refused twice, then taken
    assert bot.seen(req_id, "alice").replace("\n", "") == answer.replace("\n", "")


async def test_a_connection_lost_mid_answer_still_ends_in_one_complete_answer(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    answer = "".join(f"第{n}句。" for n in range(60))
    model.set_reply(answer)
    model.set_stream(chunk_chars=10, chunk_delay=0.05)
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, msgid = await bot.push_text("alice", "讲")
        await bot.wait_for(lambda: len(bot.streams_of(req_id)) == 1 and len(bot.streams_of(req_id)[0].contents) > 2)
        await bot.drop()
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
    assert bot.connections == 2
    assert stream.text == answer and stream.id == f"s_{msgid}"  # the same bubble, finished on the new connection
    assert bot.sent == [] and not bot.late_frames and len(model.requests) == 1


async def test_chat_type_1_answers_private_chats_only(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot, chat_type="1"), BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push_text("alice", "@RobotA 你好", chat="wrGROUP1")
        stream = await bot.wait_finished(req_id)
        await daemon.idle()
    assert model.requests == [] and stream.text and "echo" not in stream.text


async def test_a_stream_near_its_six_minutes_is_ended_and_the_answer_follows_as_a_message(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow start and a long answer: the bubble is finished with a note before the server stops taking frames
    (here scaled: 0.5 s of life, the server's limit 1 s), and the answer comes whole as a message."""
    monkeypatch.setattr(stream_module, "LIFETIME", 0.5)
    bot.stream_ttl = 1.0
    model.set_reply("慢慢写出来的回答。" * 5)
    model.set_stream(chunk_chars=3, chunk_delay=0.1)  # 1.5 s
    async with DaemonRunner(bot_settings(tmp_path, wecom, model, bot), BOT_FAST) as daemon:
        await running(daemon, bot)
        req_id, _ = await bot.push_text("alice", "写")
        await bot.wait_for(lambda: bool(bot.markdowns("alice")), what="the answer as a message")
        await daemon.idle()
    (stream,) = bot.streams_of(req_id)
    assert stream.finished and stream.text.endswith(stream_module.CONTINUED)
    assert bot.markdowns("alice") == ["慢慢写出来的回答。" * 5]
    refused = [f for f in bot.frames if f.way == "out" and f.data.get("errcode") == 846608]
    assert not refused and not bot.late_frames
