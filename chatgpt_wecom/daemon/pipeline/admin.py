"""Admin commands typed in chat: each change applied at once, persisted and audited (actor = the admin)."""

from __future__ import annotations

from collections.abc import Callable

from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.commands import (
    AdminCommand,
    AdminUsage,
    Block,
    EditWords,
    HistoryLink,
    ResetQuota,
    ShowLists,
    Unblock,
)
from chatgpt_wecom.daemon.chat.policy import LIST_NAMES
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.store.usage import UsageStore


class AdminActions:
    def __init__(
        self,
        policy: LivePolicy,
        usage: UsageStore,
        today: Callable[[float], str],
        history_reply: Callable[[str], str | None],
    ) -> None:
        self._policy = policy
        self._usage = usage
        self._today = today  # unix time -> local day "YYYY-MM-DD"
        self._history_reply = history_reply  # user -> the reply carrying a signed link; None without service_url

    async def run(self, command: AdminCommand, admin: str, now: float) -> str:
        policy = self._policy
        match command:
            case ResetQuota(user):
                cleared = await self._usage.reset(user, self._today(now), actor=admin)
                who = "所有人" if user is None else user
                return f"已重置{who}今天的提问额度（清除了 {cleared} 次）。"
            case Block(user):
                if policy.lists.is_admin(user):
                    return f"{user} 是管理员，不能拉黑。请先把 TA 移出管理员名单。"
                added = await policy.add_users("deny", [user], actor=admin)
                return f"已拉黑 {user}。" if added else f"{user} 已经在禁止名单里。"
            case Unblock(user):
                removed = await policy.remove_users("deny", [user], actor=admin)
                return f"已解封 {user}。" if removed else f"{user} 不在禁止名单里。"
            case EditWords(add, words):
                if add:
                    changed = await policy.add_words(words, actor=admin)
                    return f"已添加 {len(changed)} 个敏感词。" if changed else "这些词已经在敏感词里了。"
                changed = await policy.remove_words(words, actor=admin)
                return f"已删除 {len(changed)} 个敏感词。" if changed else "这些词不在敏感词里。"
            case ShowLists():
                members: dict[str, list[str]] = {
                    name: sorted(policy.lists.members(name), key=str.casefold) for name in LIST_NAMES
                }
                return replies.lists_report(members, len(policy.words.words))
            case HistoryLink(user):
                return self._history_reply(user) or replies.history_link_unavailable()
            case AdminUsage(usage):
                return usage
        raise AssertionError("unreachable")  # pragma: no cover
