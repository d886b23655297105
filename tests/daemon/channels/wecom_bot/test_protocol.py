"""The AI bot's pure helpers against the protocol reference's test vectors (wecom-aibot-protocol.md §9)."""

from __future__ import annotations

import json

import pytest

from chatgpt_wecom.daemon.channels.wecom_bot import protocol

AESKEY = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
CIPHERTEXT = bytes.fromhex(
    "d2d6bfb2885c45d999689d79a1117ae919087ed455b8ac1f64e54052796371350cbdadff2afe92527b934a6ac7882d2f7c754f793b04529a72372afff0776618"
)
PLAINTEXT = "企业微信智能机器人 media test vector 0123456789".encode()


@pytest.mark.parametrize("key", [AESKEY, AESKEY.rstrip("=")])
def test_media_decrypts_with_the_messages_aeskey(key: str) -> None:
    assert protocol.decrypt_media(CIPHERTEXT, key) == PLAINTEXT


def test_a_wrong_key_or_damaged_data_is_refused() -> None:
    with pytest.raises(ValueError, match="padding"):
        protocol.decrypt_media(CIPHERTEXT, "A" * 43)
    with pytest.raises(ValueError, match="blocks"):
        protocol.decrypt_media(CIPHERTEXT[:-1], AESKEY)
    with pytest.raises(ValueError, match="32 bytes"):
        protocol.decrypt_media(CIPHERTEXT, "AAAA")


def test_utf8_split_never_cuts_a_character() -> None:
    pieces = protocol.split_utf8("中" * 7000)
    assert [len(p) for p in pieces] == [6826, 174] and [len(p.encode()) for p in pieces] == [20478, 522]
    assert [len(p.encode()) for p in protocol.split_utf8("a" * 20480 + "中")] == [20480, 3]
    assert protocol.cap("a" * 20479 + "中") == "a" * 20479


@pytest.mark.parametrize(
    ("text", "name", "expected"),
    [
        ("@RobotA hello robot", "RobotA", "hello robot"),
        ("@RobotA\u2005帮我看下 @李四 的问题", "RobotA", "帮我看下 @李四 的问题"),
        ("@RobotA", "RobotA", ""),
        ("@机器人 这是今日的测试情况", "", "这是今日的测试情况"),  # no name configured: any leading @name
        ("hello @RobotA", "RobotA", "hello @RobotA"),  # only a leading mention
        ("@RobotAB hi", "RobotA", "@RobotAB hi"),  # another name that starts alike
    ],
)
def test_the_leading_mention_is_stripped(text: str, name: str, expected: str) -> None:
    assert protocol.strip_mention(text, name) == expected


def test_a_bare_mention_asks_about_the_quote() -> None:
    body = {"quote": {"msgtype": "text", "text": {"content": "这是今日的测试情况"}}}
    assert protocol.quote_text(body) == "这是今日的测试情况"
    mixed = {"msg_item": [{"msgtype": "text", "text": {"content": "看图"}},
                          {"msgtype": "image", "image": {"url": "https://x/1", "aeskey": "k1"}},
                          {"msgtype": "image", "image": {"url": "https://x/2", "aeskey": "k2"}}]}  # fmt: skip
    assert protocol.mixed_parts(mixed) == ("看图", {"url": "https://x/1", "aeskey": "k1"})


def test_frames_are_the_golden_ones() -> None:
    sub = protocol.subscribe("aibFAKEBOTID", "FAKESECRET")
    assert sub["cmd"] == "aibot_subscribe" and sub["body"] == {"bot_id": "aibFAKEBOTID", "secret": "FAKESECRET"}
    assert sub["headers"]["req_id"].startswith("aibot_subscribe_")
    ping = protocol.ping()
    assert set(ping) == {"cmd", "headers"} and ping["headers"]["req_id"].startswith("ping_")  # no body at all
    first = protocol.stream("REQ", "s_M1", "正在思考…", finish=False, feedback_id="M1")
    assert first == {
        "cmd": "aibot_respond_msg",
        "headers": {"req_id": "REQ"},
        "body": {
            "msgtype": "stream",
            "stream": {"id": "s_M1", "finish": False, "content": "正在思考…", "feedback": {"id": "M1"}},
        },
    }
    last = protocol.stream("REQ", "s_M1", "中" * 7000, finish=True)
    assert "feedback" not in last["body"]["stream"] and len(last["body"]["stream"]["content"].encode()) <= 20480
    assert protocol.welcome("EVT", "欢迎")["body"] == {"msgtype": "text", "text": {"content": "欢迎"}}
    send = protocol.send_markdown("zhangsan", "**主动推送**")
    assert send["body"] == {"chatid": "zhangsan", "msgtype": "markdown", "markdown": {"content": "**主动推送**"}}
    assert protocol.send_image("wrG", "MID")["body"] == {
        "chatid": "wrG",
        "msgtype": "image",
        "image": {"media_id": "MID"},
    }


def test_upload_frames() -> None:
    init, chunks = protocol.upload_frames("file", "a.txt", b"hello file")
    assert init == {"type": "file", "filename": "a.txt", "total_size": 10, "total_chunks": 1,
                    "md5": "cf0be5077e7ed25a944c353d77df0f10"}  # fmt: skip
    assert chunks == ["aGVsbG8gZmlsZQ=="]
    for size, count in ((524_288, 1), (1_300_000, 3), (52_428_800, 100)):
        assert protocol.upload_frames("file", "f", bytes(size))[0]["total_chunks"] == count
    with pytest.raises(ValueError, match="at most 100"):
        protocol.upload_frames("file", "f", bytes(52_428_801))


def test_parse_acks_and_callbacks() -> None:
    ack = protocol.parse('{"headers":{"req_id":"X"},"errcode":846608,"errmsg":"stream message update expired"}')
    assert (ack.cmd, ack.req_id, ack.errcode, ack.errmsg) == ("", "X", 846608, "stream message update expired")
    callback = {"cmd": "aibot_msg_callback", "headers": {"req_id": "b57"},
                "body": {"msgid": "MSG1", "chattype": "group", "text": {"content": "a\x01b"}}}  # fmt: skip
    parsed = protocol.parse(json.dumps(callback).replace("a\\u0001b", "a\x01b"))
    assert parsed.cmd == "aibot_msg_callback" and parsed.body["text"]["content"] == "ab"  # control bytes dropped
    with pytest.raises(ValueError):
        protocol.parse("[1, 2]")
