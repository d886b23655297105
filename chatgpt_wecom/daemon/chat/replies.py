"""The texts the bot says on its own behalf (not the model's answers)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from chatgpt_wecom.daemon.chat.commands import Mode
from chatgpt_wecom.daemon.chat.session import format_duration


def mode_switched(mode: Mode, default: Mode, timeout: float) -> str:
    text = f"**现在进入{mode}模式**"
    if mode == "串聊":
        text += "\n\n> 接下来的消息会带上之前的对话。发送「重置」可以清空上下文。"
    if mode != default:
        text += f"\n\n> {format_duration(timeout)}无消息后恢复默认模式：{default}"
    return text


def conversation_reset(default: Mode) -> str:
    return f"已重置对话，上下文已清空，回到默认模式：{default}。\n\n> 可以开始新的对话"


def question_too_long(length: int, limit: int) -> str:
    return f"问题太长了（{length} 字），上限是 {limit} 字。请精简后再发。"


def model_unavailable() -> str:
    return "抱歉，现在没能得到回答，请稍后再试。"


def context_too_long() -> str:
    return "这个问题对模型来说太长了，请缩短后再试。"


def unsupported_message(msg_type: str) -> str:
    kinds = {
        "image": "图片",
        "voice": "语音",
        "video": "视频",
        "file": "文件",
        "location": "位置",
        "link": "链接",
    }
    return f"暂时只支持文字消息，收到的{kinds.get(msg_type, '这类消息')}没有处理。"


def admins_only() -> str:
    return "只有管理员可以使用这个命令。"


def sensitive_question(words: list[str]) -> str:
    shown = "」「".join(words[:3])
    return f"问题里有不允许的词「{shown}」，这个问题不能回答。请修改后再问。"


def quota_exhausted(limit: int, resets_at: datetime, zone: str) -> str:
    return (
        f"今天的 {limit} 次提问已经用完了，额度会在 {resets_at:%m月%d日 %H:%M}（{zone}）重置。\n\n"
        "> 如需提高额度，请联系管理员。"
    )


def quota_line(used: int, limit: int, unlimited: bool) -> str:
    if limit <= 0 or unlimited:
        return f"今日额度：不限（已问 {used} 次）"
    return f"今日额度：已用 {used}/{limit}，剩余 {max(limit - used, 0)}"


def usage_report(
    today: tuple[int, int],
    month: tuple[int, int],
    quota: str,
    everyone: tuple[tuple[int, int, int], tuple[int, int, int], list[tuple[str, int, int]]] | None = None,
) -> str:
    """用量: (questions, tokens) today and this month, the quota line; for admins the totals and top users."""
    lines = [
        "**你的用量**",
        f"今天：{today[0]} 次提问，{today[1]:,} tokens",
        f"本月：{month[0]} 次提问，{month[1]:,} tokens",
        quota,
    ]
    if everyone is not None:
        (dq, dt, du), (mq, mt, mu), top = everyone
        lines += [
            "",
            "**全员用量**",
            f"今天：{dq} 次提问，{dt:,} tokens，{du} 人",
            f"本月：{mq} 次提问，{mt:,} tokens，{mu} 人",
        ]
        if top:
            lines.append("本月提问最多：")
            lines += [f"{n}. {user} — {q} 次，{t:,} tokens" for n, (user, q, t) in enumerate(top, start=1)]
    return "\n".join(lines)


def lists_report(members: Mapping[str, list[str]], words: int) -> str:
    labels = {"allow": "允许名单", "deny": "禁止名单", "vip": "VIP", "admin": "管理员"}
    lines = ["**名单**"]
    for name, label in labels.items():
        users = members.get(name, [])
        lines.append(f"{label}（{len(users)}）：{'、'.join(users) if users else '（空）'}")
    if not members.get("allow"):
        lines.append("> 允许名单为空：除禁止名单外所有人都可以使用。")
    lines.append(f"敏感词：{words} 个")
    return "\n".join(lines)
