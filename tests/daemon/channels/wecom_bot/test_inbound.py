"""Callbacks as Inbound messages: keys, chats, mention strip, quotes, voice, pictures, mixed, unsupported types."""

from __future__ import annotations

from typing import Any

from chatgpt_wecom.daemon.channels.base import QUESTION_FOLLOWS, Inbound
from chatgpt_wecom.daemon.channels.wecom_bot import inbound
from chatgpt_wecom.daemon.channels.wecom_bot.protocol import Received


def callback(body: dict[str, Any], req_id: str = "REQ1") -> Received:
    return Received("aibot_msg_callback", req_id, {"msgid": "M1", "from": {"userid": "zhangsan"}, **body}, 0, "")


def single(msgtype: str, content: dict[str, Any]) -> list[Inbound]:
    return inbound.messages(callback({"chattype": "single", "msgtype": msgtype, msgtype: content}), "RobotA")


def group(content: str, quote: dict[str, Any] | None = None, name: str = "RobotA") -> list[Inbound]:
    body = {"chattype": "group", "chatid": "wrGROUP1", "msgtype": "text", "text": {"content": content}}
    return inbound.messages(callback({**body, **({"quote": quote} if quote else {})}), name)


def test_a_private_text() -> None:
    assert single("text", {"content": " 你好 "}) == [
        Inbound("M1", "zhangsan", "text", "你好", chat="", payload={"req_id": "REQ1", "chattype": "single"})
    ]


def test_a_group_text_loses_its_mention_and_keeps_its_chat() -> None:
    (message,) = group("@RobotA hello robot")
    assert (message.content, message.chat, message.payload["chattype"]) == ("hello robot", "wrGROUP1", "group")
    assert group("@机器人 你好", name="")[0].content == "你好"


def test_a_bare_mention_asks_about_the_quote_and_an_empty_one_is_nothing() -> None:
    assert (
        group("@RobotA", {"msgtype": "text", "text": {"content": "这是今日的测试情况"}})[0].content
        == "这是今日的测试情况"
    )
    assert group("@RobotA") == []


def test_voice_comes_transcribed() -> None:
    (message,) = single("voice", {"content": "明天天气如何"})
    assert (message.msg_type, message.content, message.payload["recognition"]) == (
        "voice",
        "明天天气如何",
        "明天天气如何",
    )


def test_a_picture_carries_what_fetches_it() -> None:
    (message,) = single("image", {"url": "https://x/p", "aeskey": "KEY"})
    assert (message.msg_type, message.payload["media_id"]) == ("image", "KEY https://x/p")


def test_a_mixed_message_is_its_picture_then_its_text() -> None:
    mixed = {"msg_item": [{"msgtype": "text", "text": {"content": "这是什么"}},
                          {"msgtype": "image", "image": {"url": "https://x/p", "aeskey": "KEY"}}]}  # fmt: skip
    picture, text = single("mixed", mixed)
    assert (picture.dedupe_key, picture.msg_type, text.dedupe_key, text.content) == (
        "M1:image",
        "image",
        "M1",
        "这是什么",
    )
    assert picture.payload[QUESTION_FOLLOWS] == "1" and QUESTION_FOLLOWS not in text.payload
    only = {"msg_item": [{"msgtype": "image", "image": {"url": "https://x/p", "aeskey": "KEY"}}]}
    (alone,) = single("mixed", only)
    assert alone.msg_type == "image" and QUESTION_FOLLOWS not in alone.payload  # no question: it gets its receipt


def test_files_and_videos_keep_their_type_and_malformed_callbacks_are_dropped() -> None:
    assert [m.msg_type for m in single("file", {"url": "u", "aeskey": "k"})] == ["file"]
    assert [m.msg_type for m in single("video", {"url": "u", "aeskey": "k"})] == ["video"]
    assert inbound.messages(Received("aibot_msg_callback", "R", {"msgtype": "text"}, 0, ""), "") == []
