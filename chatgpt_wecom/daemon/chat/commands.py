"""What a user's text asks for. Pure: text in, a command value out.

Plain words: 帮助, 单聊, 串聊, 重置 (退出, 结束), 模板, 用量 (余额), 图片. `#图片 PROMPT` draws an image.
Admin commands start with # (or ＃): #重置额度 USERID|all, #拉黑 USERID, #解封 USERID, #敏感词 添加|删除 WORD…,
#名单, #查对话 username:USERID. Anything else is a question — which may still be a prompt template such as
"#周报 …"; the templates decide that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Mode = Literal["单聊", "串聊"]
MODES: tuple[Mode, ...] = ("单聊", "串聊")


@dataclass(frozen=True, slots=True)
class ShowHelp:
    pass


@dataclass(frozen=True, slots=True)
class SwitchMode:
    mode: Mode


@dataclass(frozen=True, slots=True)
class ResetConversation:
    pass


@dataclass(frozen=True, slots=True)
class ShowTemplates:
    pass


@dataclass(frozen=True, slots=True)
class ShowUsage:
    pass


@dataclass(frozen=True, slots=True)
class GenerateImage:
    prompt: str  # "" shows how to use it


@dataclass(frozen=True, slots=True)
class Ask:
    question: str


@dataclass(frozen=True, slots=True)
class ResetQuota:
    user: str | None  # None: everyone


@dataclass(frozen=True, slots=True)
class Block:
    user: str


@dataclass(frozen=True, slots=True)
class Unblock:
    user: str


@dataclass(frozen=True, slots=True)
class EditWords:
    add: bool
    words: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class ShowLists:
    pass


@dataclass(frozen=True, slots=True)
class HistoryLink:
    user: str


@dataclass(frozen=True, slots=True)
class AdminUsage:
    """An admin command with missing or wrong arguments: `usage` says how to write it."""

    usage: str


AdminCommand = ResetQuota | Block | Unblock | EditWords | ShowLists | HistoryLink | AdminUsage
Command = ShowHelp | SwitchMode | ResetConversation | ShowTemplates | ShowUsage | GenerateImage | Ask | AdminCommand

_WORDS: dict[str, Command] = {
    "帮助": ShowHelp(),
    "help": ShowHelp(),
    "/help": ShowHelp(),
    "单聊": SwitchMode("单聊"),
    "串聊": SwitchMode("串聊"),
    "重置": ResetConversation(),
    "退出": ResetConversation(),
    "结束": ResetConversation(),
    "模板": ShowTemplates(),
    "用量": ShowUsage(),
    "余额": ShowUsage(),
    "图片": GenerateImage(""),
}

_IMAGE = re.compile(r"[#＃]图片(?:\s+(.*))?$", re.DOTALL)

ADMIN_USAGE = {
    "重置额度": "#重置额度 USERID（或 all：所有人）",
    "拉黑": "#拉黑 USERID",
    "解封": "#解封 USERID",
    "敏感词": "#敏感词 添加|删除 词语 [词语…]",
    "名单": "#名单",
    "查对话": "#查对话 username:USERID",
}


def parse_command(text: str) -> Command:
    """The command `text` spells, or Ask(text) for a question (an empty message shows the help)."""
    stripped = text.strip()
    if not stripped:
        return ShowHelp()
    word = _WORDS.get(stripped.lower())
    if word is not None:
        return word
    if stripped[0] in "#＃":
        if image := _IMAGE.match(stripped):
            return GenerateImage((image[1] or "").strip())
        admin = _parse_admin(stripped[1:].split())
        if admin is not None:
            return admin
    return Ask(stripped)


def _parse_admin(args: list[str]) -> AdminCommand | None:
    if not args or args[0] not in ADMIN_USAGE:
        return None
    name, rest = args[0], args[1:]
    usage = AdminUsage(f"用法：{ADMIN_USAGE[name]}")
    match name:
        case "重置额度" if len(rest) == 1:
            return ResetQuota(None if rest[0].lower() == "all" else rest[0])
        case "拉黑" if len(rest) == 1:
            return Block(rest[0])
        case "解封" if len(rest) == 1:
            return Unblock(rest[0])
        case "敏感词" if len(rest) >= 2 and rest[0] in ("添加", "删除"):
            return EditWords(rest[0] == "添加", tuple(rest[1:]))
        case "名单" if not rest:
            return ShowLists()
        case "查对话" if len(rest) == 1 and rest[0].removeprefix("username:"):
            return HistoryLink(rest[0].removeprefix("username:"))
    return usage
