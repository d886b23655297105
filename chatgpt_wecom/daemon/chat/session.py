"""A user's mode and whether their 串聊 conversation is still running.

`session_timeout` is measured from the user's last message: after that much silence a chosen mode falls back to
`default_mode` and the old context is dropped, as the Go project did.
"""

from __future__ import annotations

from dataclasses import dataclass

from chatgpt_wecom.daemon.chat.commands import Mode


@dataclass(frozen=True, slots=True)
class Session:
    mode: Mode
    expired: bool  # the previous conversation timed out: drop its context


def current_session(
    chosen: str | None, last_active_at: float | None, now: float, *, timeout: float, default: Mode
) -> Session:
    expired = last_active_at is not None and now - last_active_at > timeout
    if chosen == "单聊" and not expired:
        return Session("单聊", expired)
    if chosen == "串聊" and not expired:
        return Session("串聊", expired)
    return Session(default, expired)


def format_duration(seconds: float) -> str:
    """600 -> '10分钟', 90 -> '1分30秒', 7200 -> '120分钟'."""
    minutes, secs = divmod(int(seconds), 60)
    if minutes and secs:
        return f"{minutes}分{secs}秒"
    return f"{minutes}分钟" if minutes else f"{secs}秒"
