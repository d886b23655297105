"""用量 (余额): a user's questions and tokens today and this month, with their quota — and, for an admin, everyone's."""

from __future__ import annotations

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.policy import AccessLists, day_start, local_day, month_start
from chatgpt_wecom.daemon.store.inbox import InboxRow
from chatgpt_wecom.daemon.store.usage import UsageStore


async def usage_report(usage: UsageStore, lists: AccessLists, settings: Settings, row: InboxRow) -> str:
    """The 用量 reply to `row`'s sender, as of when they asked (days and months begin at local midnight in
    settings.timezone); the person is their id in the message's namespace."""
    zone, user, ns, now = settings.zone, row.user_id, row.namespace, row.received_at
    today, month = day_start(now, zone), month_start(now, zone)
    mine_today, mine_month = await usage.usage(user, today, ns), await usage.usage(user, month, ns)
    used = await usage.used(user, local_day(now, zone).isoformat(), ns)
    quota = replies.quota_line(used, settings.max_request, lists.unlimited(user, ns))
    everyone = None
    if lists.is_admin(user, ns):
        (d, du), (m, mu) = await usage.totals(today), await usage.totals(month)
        top = [(u.user_id, u.questions, u.tokens) for u in await usage.top_users(month)]
        everyone = ((d.questions, d.tokens, du), (m.questions, m.tokens, mu), top)
    return replies.usage_report(
        (mine_today.questions, mine_today.tokens), (mine_month.questions, mine_month.tokens), quota, everyone
    )
