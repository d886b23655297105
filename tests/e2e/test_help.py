"""帮助 without a configured `help`: what this deployment can do, for the one asking; a configured `help` wins."""

from __future__ import annotations

from pathlib import Path

from chatgpt_wecom.config import LEGACY_HELP
from tests.daemon_runner import Chat, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

EVERYONE = ["单聊", "串聊", "重置", "用量", "帮助"]
ADMIN = ["#重置额度", "#拉黑", "#解封", "#敏感词", "#名单"]


async def test_the_default_help_lists_what_is_configured_and_admin_commands_only_to_admins(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    everything = make_settings(
        tmp_path / "a", wecom, model, vision_model="gpt-4o", admin_users=["boss"], service_url="https://bot.example.com"
    )
    async with DaemonRunner(everything) as daemon:
        chat = Chat(daemon, wecom)
        user, boss = await chat.say("u1", "帮助"), await chat.say("boss", "帮助")
    for word in [*EVERYONE, "#图片", "发语音", "发图片"]:
        assert word in user and word in boss, word
    assert not [word for word in [*ADMIN, "#查对话", "管理员"] if word in user]
    assert all(word in boss for word in [*ADMIN, "#查对话 username:USERID"])

    bare = make_settings(tmp_path / "b", wecom, model, image_model="", speech_model="", admin_users=["boss"])
    async with DaemonRunner(bare) as daemon:
        chat = Chat(daemon, wecom)
        user, boss = await chat.say("u2", "帮助"), await chat.say("boss", "帮助")
    assert all(word in user for word in EVERYONE)
    assert not [word for word in ["#图片", "发语音", "发图片"] if word in user + boss]
    assert "#拉黑" in boss and "#查对话" not in boss  # no service_url: no history links


async def test_a_configured_help_wins_and_the_go_projects_default_counts_as_none(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    own = make_settings(tmp_path / "a", wecom, model, help="请找 IT 部门")
    async with DaemonRunner(own) as daemon:
        assert await Chat(daemon, wecom).say("u1", "帮助") == "请找 IT 部门"
    legacy = make_settings(tmp_path / "b", wecom, model, help=LEGACY_HELP)  # copied from the Go project's example
    async with DaemonRunner(legacy) as daemon:
        shown = await Chat(daemon, wecom).say("u2", "帮助")
    assert "用量" in shown and "#图片" in shown and shown != LEGACY_HELP
