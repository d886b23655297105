"""Parsing of chat commands (pure)."""

from __future__ import annotations

import pytest

from chatgpt_wecom.daemon.chat.commands import (
    AdminUsage,
    Ask,
    Block,
    EditWords,
    ResetConversation,
    ResetQuota,
    ShowHelp,
    ShowLists,
    ShowTemplates,
    ShowUsage,
    SwitchMode,
    Unblock,
    parse_command,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", ShowHelp()),
        ("  帮助 ", ShowHelp()),
        ("HELP", ShowHelp()),
        ("单聊", SwitchMode("单聊")),
        ("串聊", SwitchMode("串聊")),
        ("重置", ResetConversation()),
        ("退出", ResetConversation()),
        ("结束", ResetConversation()),
        ("模板", ShowTemplates()),
        ("用量", ShowUsage()),
        ("余额", ShowUsage()),
        ("#重置额度 alice", ResetQuota("alice")),
        ("＃重置额度 ALL", ResetQuota(None)),
        ("#拉黑 bob", Block("bob")),
        ("#解封 bob", Unblock("bob")),
        ("#敏感词 添加 甲 乙", EditWords(True, ("甲", "乙"))),
        ("#敏感词 删除 甲", EditWords(False, ("甲",))),
        ("#名单", ShowLists()),
        ("帮助我写代码", Ask("帮助我写代码")),
        ("#周报 本周", Ask("#周报 本周")),
        ("#拉黑", AdminUsage("用法：#拉黑 USERID")),
        ("#敏感词 改 甲", AdminUsage("用法：#敏感词 添加|删除 词语 [词语…]")),
        ("#名单 多余", AdminUsage("用法：#名单")),
    ],
)
def test_parse(text: str, expected: object) -> None:
    assert parse_command(text) == expected
