"""Who may chat, who is limited, and when a day ends. Pure decisions over a snapshot of the live policy.

Semantics (the Go project's, fixed where it was wrong):
- admins may always chat, use admin commands, and are never limited;
- `deny` wins over everything except admin;
- a non-empty `allow` admits only its members (and admins);
- VIPs are never limited by the daily quota.
WeCom UserIDs are case-insensitive, so membership is too. An entry is a plain id (that id in every namespace) or
`namespace:id` (that person only): pass the person's namespace to match both kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from chatgpt_wecom.protocol import ListName

LIST_NAMES: tuple[ListName, ...] = ("allow", "deny", "vip", "admin")
LIST_LABELS: dict[ListName, str] = {"allow": "允许", "deny": "禁止", "vip": "VIP", "admin": "管理员"}


def _fold(users: frozenset[str] | set[str] | tuple[str, ...]) -> frozenset[str]:
    return frozenset(u.casefold() for u in users)


@dataclass(frozen=True, slots=True)
class AccessLists:
    allow: frozenset[str] = frozenset()
    deny: frozenset[str] = frozenset()
    vip: frozenset[str] = frozenset()
    admin: frozenset[str] = frozenset()
    _folded: dict[str, frozenset[str]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        folded = {name: _fold(getattr(self, name)) for name in LIST_NAMES}
        object.__setattr__(self, "_folded", folded)

    def members(self, name: ListName) -> frozenset[str]:
        return frozenset(getattr(self, name))

    def has(self, name: ListName, user: str, namespace: str | None = None) -> bool:
        folded, user = self._folded[name], user.casefold()
        return user in folded or (namespace is not None and f"{namespace}:{user}".casefold() in folded)

    def is_admin(self, user: str, namespace: str | None = None) -> bool:
        return self.has("admin", user, namespace)

    def may_chat(self, user: str, namespace: str | None = None) -> bool:
        if self.is_admin(user, namespace):
            return True
        if self.has("deny", user, namespace):
            return False
        return not self.allow or self.has("allow", user, namespace)

    def unlimited(self, user: str, namespace: str | None = None) -> bool:
        return self.is_admin(user, namespace) or self.has("vip", user, namespace)


def chat_refusal(chat_type: str, allow_groups: Sequence[str], *, private: bool, chat: str, title: str = "",
                 admin: bool = False) -> str | None:  # fmt: skip
    """Why the bot does not answer in this chat ("private" | "group" | "group_not_allowed"), or None: it does.
    `chat_type` is chatgpt-dingtalk's: "0" both, "1" private chats only, "2" groups only; `allow_groups`, when not
    empty, names the groups (by id, or by title where the platform gives one) — admins may use any group."""
    if private:
        return "private" if chat_type == "2" else None
    if chat_type == "1":
        return "group"
    if allow_groups and not admin and chat not in allow_groups and (not title or title not in allow_groups):
        return "group_not_allowed"
    return None


@dataclass(frozen=True, slots=True)
class QuotaDecision:
    allowed: bool
    used: int
    limit: int  # 0: no limit


def check_quota(lists: AccessLists, user: str, used: int, limit: int, namespace: str | None = None) -> QuotaDecision:
    """May `user`, who asked `used` questions today, ask one more under `limit` (0 = unlimited)?"""
    allowed = limit <= 0 or lists.unlimited(user, namespace) or used < limit
    return QuotaDecision(allowed, used, limit)


def local_day(ts: float, zone: ZoneInfo) -> date:
    """The calendar day of unix time `ts` in `zone`: quotas reset at local midnight, not UTC."""
    return datetime.fromtimestamp(ts, zone).date()


def next_midnight(ts: float, zone: ZoneInfo) -> datetime:
    """The local midnight after `ts`, as an aware datetime in `zone`."""
    return datetime.combine(local_day(ts, zone) + timedelta(days=1), time(0), tzinfo=zone)


def month_start(ts: float, zone: ZoneInfo) -> float:
    """Unix time of the first local midnight of the month of `ts`."""
    return datetime.combine(local_day(ts, zone).replace(day=1), time(0), tzinfo=zone).timestamp()


def day_start(ts: float, zone: ZoneInfo) -> float:
    return datetime.combine(local_day(ts, zone), time(0), tzinfo=zone).timestamp()
