"""DingTalk end to end: the real daemon, configured for DingTalk alone, against FakeDingTalk on loopback —
Stream mode in, sessionWebhook or OpenAPI out."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.channels.dingtalk.stream import ack
from tests.daemon_runner import DaemonRunner
from tests.dingtalk_runner import FAST_DING, dingtalk_settings
from tests.fakes.dingtalk import GROUP_SEND, PRIVATE_SEND, WEBHOOK, FakeDingTalk
from tests.fakes.model import FakeModel, tiny_png

APP = "ding-app-1"
DATA = Path(__file__).parent.parent / "data"


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk({APP: "ding-secret-1", "ding-app-2": "ding-secret-2"}) as fake:
        yield fake


@pytest.fixture
async def daemon(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> AsyncIterator[DaemonRunner]:
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model), FAST_DING) as runner:
        await ding.wait_connected(APP)
        await ding.wait_connected("ding-app-2")
        yield runner


async def test_a_private_question_is_acked_after_it_is_stored_and_answered_once_by_webhook(
    daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel
) -> None:
    frame_id = await ding.push(ding.message("  你好  ", user="alice"))
    ack = ding.acks[frame_id]
    assert ack["code"] == 200 and ack["headers"]["messageId"] == frame_id
    await ding.wait_for(lambda: ding.replies(user="alice"), what="the answer")
    await daemon.idle()
    (reply,) = ding.replies(user="alice")
    assert (reply.via, reply.msgtype, reply.text, reply.title) == ("webhook", "markdown", "echo: 你好", "echo: 你好")
    assert reply.at_users == []  # a private chat: nobody to @
    assert model.requests[-1].last_user_text == "你好"
    assert ding.requests_to(PRIVATE_SEND) == []  # the webhook was valid: no API call


async def test_a_redelivered_message_is_acked_and_answered_once(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    message = ding.message("只回答一次", user="bob")
    first = await ding.push(message)
    second = await ding.push(message)  # the same msgId again
    assert ding.acks[first]["code"] == ding.acks[second]["code"] == 200
    await ding.wait_for(lambda: ding.replies(user="bob"), what="the answer")
    await daemon.idle()
    assert ding.texts(user="bob") == ["echo: 只回答一次"]


async def test_in_a_group_the_asker_is_mentioned_and_each_person_has_their_own_context(
    daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel
) -> None:
    group = "cidGroup1=="

    async def say(user: str, text: str) -> str:
        before = len(ding.replies(chat=group))
        await ding.push(ding.message(text, user=user, group=group))
        await ding.wait_for(lambda: len(ding.replies(chat=group)) > before, what=f"the answer to {text}")
        await daemon.idle()
        return ding.replies(chat=group)[-1].text

    await say("alice", "串聊")
    await say("bob", "串聊")
    await say("alice", "我叫小明")
    await say("bob", "我叫小红")
    answer = await say("alice", "我叫什么？")
    assert answer.startswith("echo: 我叫什么？") and answer.endswith("\n\n@alice")
    assert ding.replies(chat=group)[-1].at_users == ["alice"]
    sent = " ".join(str(m.get("content")) for m in model.requests[-1].messages)
    assert "我叫小明" in sent and "我叫小红" not in sent  # alice's context in this group, not bob's


async def test_an_expired_webhook_is_replaced_by_openapi(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    await ding.push(ding.message("私聊过期", user="carol", webhook_ttl_ms=30_000))  # inside the last minute
    await ding.push(ding.message("群聊过期", user="carol", group="cidG2==", webhook_ttl_ms=30_000))
    ding.webhook_errors = [300001]  # the next webhook call is refused as expired: OpenAPI in the same send
    await ding.push(ding.message("被拒绝", user="dave"))
    await ding.wait_for(lambda: len(ding.delivered) == 3, what="three answers")
    await daemon.idle()
    assert [(d.via, d.text) for d in ding.replies(user="carol")] == [("api", "echo: 私聊过期")]
    assert [(d.via, d.text) for d in ding.replies(chat="cidG2==")] == [("api", "echo: 群聊过期")]
    assert [(d.via, d.text) for d in ding.replies(user="dave")] == [("api", "echo: 被拒绝")]
    (private,) = [r for r in ding.requests_to(PRIVATE_SEND) if r.json["userIds"] == ["carol"]]
    assert private.json["robotCode"] == APP and private.json["msgKey"] == "sampleMarkdown"
    assert isinstance(private.json["msgParam"], str)
    (group,) = ding.requests_to(GROUP_SEND)
    assert group.json["openConversationId"] == "cidG2=="
    assert len(ding.requests_to("/v1.0/oauth2/accessToken")) == 1  # one token, cached


async def test_too_fast_slows_down_and_the_answer_still_arrives_once(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    ding.webhook_errors = [130101]
    await ding.push(ding.message("慢一点", user="erin"))
    await ding.wait_for(lambda: ding.replies(user="erin"), what="the answer")
    await daemon.idle()
    assert ding.texts(user="erin") == ["echo: 慢一点"]
    assert len(ding.requests_to(WEBHOOK)) == 2 and ding.requests_to(PRIVATE_SEND) == []


async def test_a_picture_is_read_by_the_vision_model(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> None:
    ding.add_file("dl-code-1", tiny_png(), "image/png")
    settings = dingtalk_settings(tmp_path, ding, model, vision_model="gpt-4o")
    async with DaemonRunner(settings, FAST_DING) as daemon:
        await ding.wait_connected(APP)
        picture = {"pictureDownloadCode": "p1", "downloadCode": "dl-code-1"}
        await ding.push(ding.message(user="fay", msgtype="picture", content=picture))
        await ding.wait_for(lambda: ding.replies(user="fay"), what="the picture's receipt")
        await daemon.idle()
        assert "收到图片" in ding.texts(user="fay")[0]
        await ding.push(ding.message("图里是什么？", user="fay"))
        await ding.wait_for(lambda: len(ding.replies(user="fay")) == 2, what="the answer")
        await daemon.idle()
    (download,) = ding.requests_to("/v1.0/robot/messageFiles/download")
    assert download.json == {"downloadCode": "dl-code-1", "robotCode": APP}
    chat = [r for r in model.requests if r.kind == "chat"][-1]
    assert chat.images and chat.last_user_text == "图里是什么？"


async def test_rich_text_asks_its_question_about_its_picture(
    tmp_path: Path, ding: FakeDingTalk, model: FakeModel
) -> None:
    ding.add_file("dl-rich", tiny_png(), "image/png")
    settings = dingtalk_settings(tmp_path, ding, model, vision_model="gpt-4o")
    async with DaemonRunner(settings, FAST_DING) as daemon:
        await ding.wait_connected(APP)
        rich = {"richText": [{"text": "这张图"}, {"downloadCode": "dl-rich", "type": "picture"}, {"text": "是什么"}]}
        await ding.push(ding.message(user="gus", msgtype="richText", content=rich))
        await ding.wait_for(lambda: ding.replies(user="gus"), what="the answer")
        await daemon.idle()
    chat = [r for r in model.requests if r.kind == "chat"][-1]
    assert chat.images and chat.last_user_text == "这张图是什么"
    # One reply, the answer: no "picture received, now ask about it" for a picture that came with its question
    assert ding.texts(user="gus") == ["echo: 这张图是什么"]


async def test_a_voice_message_is_answered_with_what_dingtalk_heard(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    audio = {"downloadCode": "dl-audio", "recognition": "明天会下雨吗"}
    await ding.push(ding.message(user="hal", msgtype="audio", content=audio))
    await ding.wait_for(lambda: ding.replies(user="hal"), what="the answer")
    await daemon.idle()
    (text,) = ding.texts(user="hal")
    assert "「明天会下雨吗」" in text and "echo: 明天会下雨吗" in text


async def test_video_and_file_are_not_supported(daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel) -> None:
    await ding.push(ding.message(user="ivy", msgtype="video", content={"duration": "5", "downloadCode": "v"}))
    await ding.wait_for(lambda: ding.replies(user="ivy"), what="the answer")
    await daemon.idle()
    assert "视频" in ding.texts(user="ivy")[0]
    assert model.requests == []


async def test_image_generation_uploads_and_shows_a_markdown_image(
    daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel
) -> None:
    model.set_image()
    await ding.push(ding.message("#图片 一只橘猫", user="jay"))
    await ding.wait_for(lambda: ding.replies(user="jay"), what="the image")
    await daemon.idle()
    (media_id,) = ding.uploads
    assert ding.uploads[media_id] == FakeModel.PNG
    images = [d for d in ding.replies(user="jay") if f"![]({media_id})" in d.text]
    assert len(images) == 1 and images[0].via == "webhook"


async def test_chat_type_and_allowed_groups_by_title(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> None:
    settings = dingtalk_settings(tmp_path, ding, model, chat_type="2", allow_groups=["研发群"])
    async with DaemonRunner(settings, FAST_DING) as daemon:
        await ding.wait_connected(APP)
        await ding.push(ding.message("私聊", user="kim"))
        await ding.push(ding.message("别的群", user="kim", group="cidOther==", title="闲聊群"))
        await ding.push(ding.message("研发群里", user="kim", group="cidDev==", title="研发群"))
        await ding.wait_for(lambda: len(ding.delivered) == 3, what="three replies")
        await daemon.idle()
    assert "群" in ding.texts(user="kim")[0] and not ding.texts(user="kim")[0].startswith("echo")
    assert not ding.texts(chat="cidOther==")[0].startswith("echo")
    assert ding.texts(chat="cidDev==")[0].startswith("echo: 研发群里")
    assert [r.last_user_text for r in model.requests] == ["研发群里"]


async def test_status_shows_each_app(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    services = daemon.services
    assert services is not None
    status = await services.operator.status()
    (channel,) = status.channels
    assert channel.name == "dingtalk" and channel.up
    apps = channel.detail["apps"]
    assert set(apps) == {APP, "ding-app-2"} and all(a["connected"] for a in apps.values())
    assert all(isinstance(a["since"], str) and a["reconnects"] == 0 and a["last_error"] is None for a in apps.values())
    assert "ding-secret" not in str(status.model_dump())


async def test_the_operators_playground_answers_a_dingtalk_user_through_openapi(
    daemon: DaemonRunner, ding: FakeDingTalk
) -> None:
    assert daemon.services is not None
    await daemon.services.operator.playground("lee", "试一试", "ops", channel="dingtalk")
    await ding.wait_for(lambda: ding.replies(user="lee"), what="the answer")
    await daemon.idle()
    assert [(d.via, d.text) for d in ding.replies(user="lee")] == [("api", "echo: 试一试")]


async def test_a_voice_message_without_recognition_is_downloaded_and_transcribed(
    daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel
) -> None:
    ding.add_file("dl-voice", (DATA / "voice_hello.amr").read_bytes(), "audio/amr")
    model.set_transcript("你好世界")
    audio = {"downloadCode": "dl-voice", "recognition": ""}
    await ding.push(ding.message(user="mia", msgtype="audio", content=audio))
    await ding.wait_for(lambda: ding.replies(user="mia"), what="the answer")
    await daemon.idle()
    (text,) = ding.texts(user="mia")
    assert "「你好世界」" in text and "echo: 你好世界" in text
    assert [r.kind for r in model.requests] == ["transcription", "chat"]


def test_the_ack_of_a_ping_is_byte_identical_to_the_sdks() -> None:
    """dingtalk-protocol.md §8, vector 6."""
    expected = (
        '{"code": 200, "headers": {"contentType": "application/json", "messageId": "m-ping-1"}, "message": "OK", '
        '"data": "{\\"opaque\\": \\"123-dsfs\\"}"}'
    )
    assert ack("m-ping-1", '{"opaque": "123-dsfs"}') == expected


async def test_a_long_answer_is_split_below_the_limit(
    daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel
) -> None:
    answer = "\n\n".join(f"第{n}段：" + "长回答里的一句话。" * 40 for n in range(1, 13))  # ~13,000 bytes
    model.set_reply(answer)
    await ding.push(ding.message("写长一点", user="ned", group="cidLong==", webhook_ttl_ms=0))  # OpenAPI, msgParam
    await ding.wait_for(lambda: len(ding.replies(chat="cidLong==")) >= 3, what="the parts")
    await daemon.idle()
    texts = ding.texts(chat="cidLong==")
    assert all(len(t.encode()) <= 6000 for t in texts) and len(texts) >= 3
    assert "".join(texts).replace("\n", "") == answer.replace("\n", "")
    params = [r.json["msgParam"] for r in ding.requests_to(GROUP_SEND)]
    assert all(len(p.encode()) <= 15000 for p in params)


async def test_a_burst_is_acked_and_answered_once_each_in_order(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    frames = [await ding.push(ding.message(f"第{n}问", user=f"p{n % 3}"), wait_ack=False) for n in range(30)]
    await ding.wait_for(lambda: all(f in ding.acks for f in frames), what="every ACK")
    assert {ding.acks[f]["code"] for f in frames} == {200}
    await ding.wait_for(lambda: len(ding.delivered) == 30, timeout=20, what="thirty answers")
    await daemon.idle()
    for user in range(3):
        assert ding.texts(user=f"p{user}") == [f"echo: 第{n}问" for n in range(user, 30, 3)]
