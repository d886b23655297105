"""A DingTalk bot message (§2) as the Inbounds the pipeline takes."""

from __future__ import annotations

from typing import Any

import pytest

from chatgpt_wecom.daemon.channels.base import QUESTION_FOLLOWS
from chatgpt_wecom.daemon.channels.dingtalk.messages import MessageError, decode, parse, parse_media_ref, user_of


def message(msgtype: str = "text", **fields: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "msgId": "msgABC==", "msgtype": msgtype, "conversationType": "1", "conversationId": "cidP==",
        "senderId": "$:LWCP_v1:$xyz", "senderStaffId": "manager1234", "senderNick": "张三",
        "sessionWebhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
        "sessionWebhookExpiredTime": 1690367502194, "robotCode": "dingAPP",
    }  # fmt: skip
    data.update(fields)
    return data


def test_private_text_is_trimmed_and_keeps_what_replying_needs() -> None:
    (inbound,) = parse(message(text={"content": "  你好 \n"}), "dingAPP")
    assert (inbound.dedupe_key, inbound.user_id, inbound.msg_type, inbound.content, inbound.chat) == (
        "msgABC==", "manager1234", "text", "你好", "")  # fmt: skip
    assert inbound.payload == {
        "client_id": "dingAPP", "conversation_type": "1", "conversation_id": "cidP==",
        "session_webhook": "https://oapi.dingtalk.com/robot/sendBySession?session=s1",
        "session_webhook_expires": "1690367502194", "staff_id": "manager1234", "sender_nick": "张三",
    }  # fmt: skip


def test_a_group_message_is_in_its_conversation_with_its_title() -> None:
    data = message(conversationType="2", conversationId="cidG==", conversationTitle="研发群", text={"content": " 问题"})
    (inbound,) = parse(data, "dingAPP")
    assert inbound.chat == "cidG==" and inbound.content == "问题" and inbound.payload["chat_title"] == "研发群"


def test_an_empty_text_gives_nothing_to_answer() -> None:
    assert parse(message(text={"content": "   "}), "dingAPP") == []


def test_a_sender_without_staff_id_gets_a_stable_stand_in() -> None:
    first = user_of(message(senderStaffId=""))
    assert first.startswith("anon-") and first == user_of(message(senderStaffId="", senderNick="别名"))
    assert first != user_of(message(senderStaffId="", senderId="$:LWCP_v1:$other"))
    (inbound,) = parse(message(senderStaffId="", text={"content": "hi"}), "dingAPP")
    assert inbound.user_id == first and inbound.payload["staff_id"] == ""


def test_picture_audio_video_file_and_unknown() -> None:
    (pic,) = parse(message("picture", content={"pictureDownloadCode": "p", "downloadCode": "d1"}), "dingAPP")
    assert pic.msg_type == "image" and parse_media_ref(pic.payload["media_id"]) == ("dingAPP", "d1")
    (voice,) = parse(message("audio", content={"downloadCode": "d2", "recognition": " 明天 "}), "dingAPP")
    assert voice.msg_type == "voice" and voice.payload["recognition"] == "明天"
    assert [i.msg_type for i in parse(message("video", content={"downloadCode": "v"}), "a")] == ["video"]
    assert [i.msg_type for i in parse(message("file", content={"fileName": "x.pdf"}), "a")] == ["file"]
    assert [i.msg_type for i in parse(message("unknownMsgType", content={}), "a")] == ["unknown"]


def test_rich_text_is_its_picture_then_its_question() -> None:
    rich = {"richText": [{"text": "这是"}, {"downloadCode": "d3", "type": "picture"}, {"text": "什么"}]}
    picture, question = parse(message("richText", content=rich), "dingAPP")
    assert (picture.msg_type, picture.dedupe_key) == ("image", "msgABC==#picture")
    assert (question.msg_type, question.content, question.dedupe_key) == ("text", "这是什么", "msgABC==")
    assert picture.payload[QUESTION_FOLLOWS] == "1" and QUESTION_FOLLOWS not in question.payload
    (alone,) = parse(message("richText", content={"richText": [{"downloadCode": "d3"}, {"text": " "}]}), "dingAPP")
    assert alone.msg_type == "image" and QUESTION_FOLLOWS not in alone.payload  # no question: it gets its receipt


@pytest.mark.parametrize("broken", [{"msgId": ""}, {"msgtype": ""}, {"senderStaffId": "", "senderId": ""}])
def test_a_message_without_its_keys_is_refused(broken: dict[str, str]) -> None:
    with pytest.raises(MessageError):
        parse(message(**broken), "dingAPP")


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b"\xff\xfe"])
def test_a_body_that_is_not_a_json_object_is_refused(body: bytes) -> None:
    with pytest.raises(MessageError):
        decode(body)
