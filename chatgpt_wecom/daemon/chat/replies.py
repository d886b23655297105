"""The texts the bot says on its own behalf (not the model's answers)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from chatgpt_wecom.daemon.chat.commands import ADMIN_USAGE, Mode
from chatgpt_wecom.daemon.chat.session import format_duration


@dataclass(frozen=True, slots=True)
class Abilities:
    """What this deployment can do for the one asking — what the default 帮助 lists."""

    default_mode: Mode
    templates: bool  # prompt templates are loaded (模板, #标题)
    images: bool  # image generation is configured (#图片)
    voice: bool  # speech-to-text is configured (voice messages)
    pictures: bool  # a vision model is configured (picture messages)
    admin: bool  # the one asking is an admin
    history_link: bool  # service_url is set (#查对话)


_RULE = "================================="


def default_help(can: Abilities) -> str:
    """The reply to 帮助 when `help` is not configured: every command this deployment answers, no more."""
    default = "，缺省" if can.default_mode == "单聊" else ""
    lines = ["Commands:", _RULE, f"🙋 单聊 👉 单独聊天{default}"]
    lines.append(f"🗣 串聊 👉 带上下文聊天{'，缺省' if can.default_mode == '串聊' else ''}")
    lines.append("🔃 重置 👉 重置带上下文聊天")
    if can.templates:
        lines.append("📋 模板 👉 查看提示词模板，发送「#标题 内容」使用")
    lines.append("📊 用量 👉 查看今天和本月的用量")
    if can.images:
        lines.append("🎨 #图片 描述 👉 按描述画一张图")
    if can.voice:
        lines.append("🎤 发语音 👉 听写后回答")
    if can.pictures:
        lines.append("🖼 发图片 👉 看图回答（可以附上问题）")
    lines += ["🚀 帮助 👉 显示帮助信息", _RULE]
    if can.admin:
        admin = [usage for name, usage in ADMIN_USAGE.items() if name != "查对话" or can.history_link]
        lines += ["管理员命令：", *admin, _RULE]
    return "\n\n".join(lines)


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


def provider_busy(seconds: float) -> str:
    wait = f"约 {round(seconds)} 秒" if seconds >= 1 else "片刻"
    return f"⏳ 模型服务繁忙，你的问题正在排队，{wait}后开始回答。"


def answer_interrupted() -> str:
    return "（回答在服务重启时中断了，以上是已生成的部分。请重新提问以获得完整回答。）"


def answer_cut_off() -> str:
    return "（回答中断：模型暂时没有回应，以上是已生成的部分。请稍后重试。）"


def internal_error() -> str:
    return "抱歉，处理这条消息时出错了，已记录下来交给管理员。请稍后再试。"


def answer_truncated(url: str | None, hours: float) -> str:
    if url is None:
        return "（回答太长，后面的部分没有发出。请让我分几次回答，或把问题问得更具体。）"
    return f"（回答太长，后面的部分没有发出。完整回答见下面的链接，{hours:g} 小时内有效，请勿转发：）\n\n{url}"


def empty_answer() -> str:
    """The model answered, but with nothing to show."""
    return "（模型没有给出内容）"


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


def chat_refused(reason: str) -> str:
    """Why the bot does not answer here (`policy.chat_refusal`)."""
    return {
        "private": "这里只在群聊中回答问题，请在群里 @我 提问。",
        "group": "这里只在私聊中回答问题，请直接私聊我。",
    }.get(reason, "本群还没有开通机器人，请联系管理员。")


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


def quota_reset(user: str | None, cleared: int) -> str:
    """#重置额度: `user` None is everyone."""
    who = "所有人" if user is None else user
    return f"已重置{who}今天的提问额度（清除了 {cleared} 次）。"


def cannot_block_admin(user: str) -> str:
    return f"{user} 是管理员，不能拉黑。请先把 TA 移出管理员名单。"


def blocked(user: str, *, added: bool) -> str:
    return f"已拉黑 {user}。" if added else f"{user} 已经在禁止名单里。"


def unblocked(user: str, *, removed: bool) -> str:
    return f"已解封 {user}。" if removed else f"{user} 不在禁止名单里。"


def words_added(count: int) -> str:
    return f"已添加 {count} 个敏感词。" if count else "这些词已经在敏感词里了。"


def words_removed(count: int) -> str:
    return f"已删除 {count} 个敏感词。" if count else "这些词不在敏感词里。"


def image_usage() -> str:
    return "用法：#图片 画面描述\n\n> 例如：#图片 一只在月球上看书的橘猫，水彩风格"


def images_unavailable() -> str:
    return "图片生成没有开启（需要管理员配置 image_model）。"


def image_refused() -> str:
    return "这个描述没有通过模型的内容审核，换个说法试试。"


def image_failed() -> str:
    return "抱歉，这次没能生成图片，请稍后再试。"


def voice_unavailable() -> str:
    return "暂时不能听语音消息（需要管理员配置 speech_model），请发文字。"


def voice_failed() -> str:
    return "抱歉，没能听清这条语音，请再说一次或者发文字。"


def heard(text: str) -> str:
    return f"🎤 听到的是：「{text}」"


def vision_unavailable() -> str:
    return "暂时不能看图片（需要管理员配置 vision_model），请用文字描述。"


def picture_received() -> str:
    return "收到图片。请发送你想问的问题，我会结合这张图片回答。"


def picture_failed() -> str:
    return "抱歉，没能取到这张图片，请再发一次。"


def history_link(user: str, url: str, hours: float) -> str:
    return f"{user} 的对话记录（{hours:g} 小时内有效，请勿转发）：\n\n{url}"


def history_link_unavailable() -> str:
    return "没有配置 service_url（本服务的公网地址），无法生成对话记录链接。"
