"""Admin commands typed in chat: each change applied at once, persisted and audited (actor = the admin).

These are the only database writes answering makes outside the worker's transaction: a list, the words or the
quota change through `LivePolicy` / `UsageStore`, each in its own transaction with its audit entry, as the command
runs — the same path the control API takes, so the change is in force (and announced) before the reply is stored.
A crash before the reply is stored runs the command again after the restart; each one is harmless twice (the
second run finds the change made and says so).
"""

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
from chatgpt_wecom.daemon.store.inbox import InboxRow
from chatgpt_wecom.daemon.store.usage import UsageStore


def actor(row: InboxRow) -> str:
    """Who to name in the audit log: the admin, or the operator who typed it in the playground as that admin."""
    if row.payload.get("source") == "playground":
        return f"{row.payload.get('by', 'control')} (playground as {row.user_id})"
    return row.user_id


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
                return replies.quota_reset(user, cleared)
            case Block(user):
                if policy.lists.is_admin(user):
                    return replies.cannot_block_admin(user)
                added = await policy.add_users("deny", [user], actor=admin)
                return replies.blocked(user, added=bool(added))
            case Unblock(user):
                removed = await policy.remove_users("deny", [user], actor=admin)
                return replies.unblocked(user, removed=bool(removed))
            case EditWords(add, words):
                if add:
                    return replies.words_added(len(await policy.add_words(words, actor=admin)))
                return replies.words_removed(len(await policy.remove_words(words, actor=admin)))
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
