"""The user directory (`GET /v1/users`): everyone the daemon knows, from every place it keeps people."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient
from tests.daemon_runner import FAST, DaemonRunner, FakeClock, make_settings
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

NOW = 1_735_725_600.0  # 2025-01-01 10:00 UTC, 18:00 in Asia/Shanghai
LAST_MONTH = NOW - 20 * 86400  # 2024-12-12


async def test_the_directory_has_everyone_from_every_source(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    memory = MemoryChannel()
    clock = FakeClock(LAST_MONTH)
    settings = make_settings(tmp_path, wecom, model, max_request=5, timezone="Asia/Shanghai")
    async with DaemonRunner(settings, dataclasses.replace(FAST, clock=clock), extra_channels=[memory]) as daemon:
        await daemon.say("olga", "asked only last month")
        clock.now = NOW
        await daemon.say("alice", "from the WeCom app")
        await daemon.say("alice", "and again")
        await memory.receive("bob", "in the group", chat="room-7", payload={"sender_nick": "小明"})
        await memory.receive("carol", "no name in this one")
        await daemon.idle()
        async with ControlClient(settings.socket_path) as client:
            await client.add_users("vip", ["alice", "vera"])  # alice is known; vera only on the list
            await client.add_users("admin", ["dingtalk:dan", "memory:bob"])
            directory = await client.users()
            quotas = await client.quotas()

    assert (directory.day, directory.timezone) == ("2025-01-01", "Asia/Shanghai")
    by = {(u.namespace, u.user_id): u for u in directory.users}
    assert by[("wecom", "alice")] == p.KnownUser(
        namespace="wecom", user_id="alice", channel="wecom", last_seen=NOW, questions_today=2, lists=["vip"]
    )
    assert by[("memory", "bob")] == p.KnownUser(
        namespace="memory",
        user_id="bob",
        name="小明",
        channel="memory",
        last_seen=NOW,
        questions_today=1,
        groups=1,
        lists=["admin"],
    )  # named as namespace:id on the list
    assert by[("memory", "carol")].name is None and by[("memory", "carol")].questions_today == 1
    olga = by[("wecom", "olga")]
    assert (olga.last_seen, olga.questions_today) == (LAST_MONTH, 0)
    assert "olga" not in {u.user_id for u in quotas.users}  # the Quotas page alone would not offer her
    assert by[("", "vera")] == p.KnownUser(namespace="", user_id="vera", lists=["vip"])
    assert by[("dingtalk", "dan")] == p.KnownUser(namespace="dingtalk", user_id="dan", lists=["admin"])
    # Most recently seen first, people known only from a list last.
    order = [(u.namespace, u.user_id) for u in directory.users]
    assert order.index(("wecom", "olga")) == len(order) - 3
    assert order[-2:] == [("dingtalk", "dan"), ("", "vera")]
