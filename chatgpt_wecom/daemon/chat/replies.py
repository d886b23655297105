"""The texts the bot says on its own behalf (not the model's answers)."""

from __future__ import annotations

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


def session_expired_note(default: Mode) -> str:
    return f"> 上一段对话已超时结束，已回到默认模式：{default}\n\n"
