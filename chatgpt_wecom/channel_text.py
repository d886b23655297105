"""How channels read to an operator, in `ctl` and the TUI alike: where a message or an exchange happened, and a
configured channel's own facts — short tags an eye can scan down a column, not walls of ids.

- A private chat's `chat` is the user's own id (or empty): saying it again adds nothing, so it is left out. A
  group is named by its id (the daemon knows no group names): a narrow column cuts it with an ellipsis, and it
  is shown whole where there is room (the Live page's detail, the History page, `ctl`).
- A person is `(namespace, user_id)`. The WeCom namespace — shared by the WeCom app and the AI bot, and where
  every exchange from before channels lives — is the usual one and goes unsaid; any other is named.

Everything returned has its controls spelled out (`visible`): channel and chat ids come from a chat platform.
Neither the daemon nor textual is imported here.
"""

from __future__ import annotations

import json
from typing import Any

from chatgpt_wecom import protocol as p
from chatgpt_wecom.visible import visible

HOME_NAMESPACE = "wecom"  # protocol.Exchange's default namespace


def group_of(chat: str, user: str) -> str | None:
    """The group `chat` names, or None when it is the private chat with `user`."""
    return None if chat in ("", user) else chat


def message_from(channel: str, chat: str, user: str) -> str:
    """Where a message came from: `wecom`, or `dingtalk · 技术群` in a group (a narrow column cuts it)."""
    group = group_of(chat, user)
    return visible(channel) if group is None else f"{visible(channel)} · {visible(group)}"


def exchange_where(namespace: str, chat: str, user: str) -> str:
    """An exchange's tag: "" for a private chat in the WeCom namespace; else `in room-7`, `dingtalk`, or
    `dingtalk · in room-7` (the namespace names whose `user` this is; the chat is shown whole)."""
    parts = [] if namespace == HOME_NAMESPACE else [visible(namespace)]
    group = group_of(chat, user)
    if group is not None:
        parts.append(f"in {visible(group)}")
    return " · ".join(parts)


def channel_facts(channel: p.ChannelStatus) -> str:
    """A channel's own facts on one line — `namespace wecom · api_base http://… · agent_id 1000002` — its
    namespace first when it is not the channel's name (the daemon sends no secrets among them)."""
    facts: list[tuple[str, Any]] = [("namespace", channel.namespace)] if channel.namespace != channel.name else []
    facts += list(channel.detail.items())
    return " · ".join(f"{visible(str(key))} {_value(value)}" for key, value in facts)


def _value(value: Any) -> str:
    """A fact's value: a string as it is, anything else as compact JSON."""
    if isinstance(value, str):
        return visible(value)
    return visible(json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str))
