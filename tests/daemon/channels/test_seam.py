"""The channel seam: a channel defined in the tests alone carries messages through the real daemon —
intake → worker → delivery — with its own text limit and formats, its own identity namespace, its own errors.
Nothing outside its definition knows it exists."""

from __future__ import annotations

import dataclasses
import itertools
import sqlite3
from pathlib import Path

from chatgpt_wecom.daemon.channels.base import (
    Channel,
    Inbound,
    Outgoing,
    Rejected,
    RetryLater,
)
from chatgpt_wecom.daemon.pipeline.pacing import Rate
from chatgpt_wecom.daemon.services import Services
from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes import channel as fakes
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom

KEYS = itertools.count()


class MemoryChannel(fakes.MemoryChannel):
    """The shared in-memory transport, with a tiny text limit, its own rates, and failures to play back."""

    capabilities = dataclasses.replace(fakes.MemoryChannel.capabilities, text_limit=64, rates=(Rate(1000, 1.0),))

    def __init__(self) -> None:
        super().__init__()
        self.failures: list[Exception] = []

    async def send(self, message: Outgoing) -> str | None:
        if self.failures:
            raise self.failures.pop(0)
        return await super().send(message)


async def test_a_channel_of_its_own_carries_a_message_end_to_end(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    answer = "\n\n".join(f"第{n}段：这一段不长。" for n in range(1, 9))  # ~300 bytes: several 64-byte messages
    model.set_reply(answer)
    memory = MemoryChannel()
    memory.failures = [RetryLater("the line is busy")]  # its own neutral error: retried, not dropped
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        services = daemon.services
        assert services is not None
        inbox_id = await services.intake(memory, Inbound(dedupe_key="m-1", user_id="alice", msg_type="text",
                                                         content="讲一讲", chat="room-7"))  # fmt: skip
        assert inbox_id is not None
        again = await services.intake(memory, Inbound(dedupe_key="m-1", user_id="alice", msg_type="text",
                                                      content="讲一讲", chat="room-7"))  # fmt: skip
        assert again is None  # the transport's retry of one message is stored once
        await daemon.idle()
        status = await services.operator.status()

    assert all(len(m.content.encode()) <= 64 for m in memory.sent)
    assert "".join(m.content for m in memory.sent).replace("\n", "") == answer.replace("\n", "")
    assert {(m.kind, m.user_id, m.chat) for m in memory.sent} == {("text", "alice", "room-7")}  # its format
    assert wecom.sent == []  # nothing leaked to the other channel
    with sqlite3.connect(settings.database_path) as conn:
        (key, channel, namespace, chat) = conn.execute(
            "SELECT dedupe_key, channel, namespace, chat FROM inbox"
        ).fetchone()
    assert (key, channel, namespace, chat) == ("memory:m-1", "memory", "memory", "room-7")
    assert [c.name for c in status.channels] == ["wecom", "memory"]


async def test_a_rejected_part_is_failed_and_the_rest_still_goes(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    model.set_reply("一" * 30)  # 90 bytes: two parts
    memory = MemoryChannel()
    memory.failures = [Rejected("no such recipient")]
    async with DaemonRunner(make_settings(tmp_path, wecom, model), extra_channels=[memory]) as daemon:
        assert daemon.services is not None
        await daemon.services.intake(memory, Inbound(dedupe_key="m-2", user_id="bob", msg_type="text", content="?"))
        await wait_until(lambda: len(memory.sent) == 1, what="the second part")
        await daemon.idle()
    assert memory.sent[0].chat == "bob"  # a private chat is the user's own id


class CorpBot(MemoryChannel):
    """Another transport of the same corp's directory (as the WeCom AI bot is): the namespace `wecom`."""

    name = "corpbot"
    namespace = "wecom"


async def ask(services: Services, channel: Channel, user: str, text: str, chat: str = "") -> None:
    key = f"k{next(KEYS)}"
    assert await services.intake(channel, Inbound(key, user, "text", text, chat=chat)) is not None


async def test_one_person_has_one_quota_wherever_they_ask(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    bot = CorpBot()
    model.set_delay(0.3)  # the second and third questions are in flight together: their quota checks must not race
    settings = make_settings(tmp_path, wecom, model, max_request=2)
    async with DaemonRunner(settings, extra_channels=[bot]) as daemon:
        assert daemon.services is not None
        await daemon.say("alice", "第一个")  # the WeCom app
        await ask(daemon.services, bot, "alice", "第二个")  # the same person on another channel of the corp
        await ask(daemon.services, bot, "alice", "第三个", chat="group-1")  # and in a group
        await daemon.idle()
    assert bot.sent[0].content == "echo: 第二个"
    in_group = "".join(m.content for m in bot.sent if m.chat == "group-1")  # in 64-byte parts
    assert "上限" in in_group or "额度" in in_group  # the third is over the one quota the person has


async def test_context_is_per_person_per_chat(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    bot = CorpBot()
    async with DaemonRunner(make_settings(tmp_path, wecom, model), extra_channels=[bot]) as daemon:
        services = daemon.services
        assert services is not None
        for chat in ("", "group-1"):
            await ask(services, bot, "alice", "串聊", chat=chat)
        await ask(services, bot, "alice", "私聊的问题")
        await ask(services, bot, "bob", "bob 在群里", chat="group-1")
        await ask(services, bot, "alice", "群里的问题", chat="group-1")
        await daemon.idle()
    asked = {r.last_user_text: [m["content"] for m in r.messages if m["role"] == "user"] for r in model.requests}
    assert asked["群里的问题"] == ["群里的问题"]  # alice's private question is not in her group context, nor bob's
    assert asked["bob 在群里"] == ["bob 在群里"]


async def test_a_qualified_list_entry_names_one_namespace(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    memory = MemoryChannel()
    settings = make_settings(tmp_path, wecom, model, deny_users=["memory:alice", "bob"])
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        assert daemon.services is not None
        await daemon.say("alice", "WeCom 的 alice")  # not the memory namespace's alice
        for user in ("alice", "bob"):
            await ask(daemon.services, memory, user, "你好")
        await daemon.idle()
    assert wecom.texts_to("alice") == ["echo: WeCom 的 alice"]
    for user in ("alice", "bob"):  # memory:alice, and bob everywhere (the refusal comes in 64-byte parts)
        assert "".join(m.content for m in memory.sent if m.user_id == user) == settings.deny_reply
