"""What a user's text asks for. Pure: text in, a command value out."""

from __future__ import annotations

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
class Ask:
    question: str


Command = ShowHelp | SwitchMode | ResetConversation | Ask

_HELP_WORDS = frozenset({"帮助", "help", "/help"})
_RESET_WORDS = frozenset({"重置", "退出", "结束"})


def parse_command(text: str) -> Command:
    """帮助 (or an empty message), 单聊, 串聊, 重置/退出/结束 — anything else is a question."""
    stripped = text.strip()
    if not stripped or stripped.lower() in _HELP_WORDS:
        return ShowHelp()
    if stripped == "单聊":
        return SwitchMode("单聊")
    if stripped == "串聊":
        return SwitchMode("串聊")
    if stripped in _RESET_WORDS:
        return ResetConversation()
    return Ask(stripped)
