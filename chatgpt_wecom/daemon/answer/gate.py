"""The gate a question passes before it costs anything: its length, the sensitive words, the daily quota.

Questions to the model and #图片 drawings pass the same gate and count against the same quota. It only reads:
the question is counted by the worker, in the transaction that stores the answer. A refusal is announced as a
`question.refused` event with its reason (too_long, sensitive_word, quota).
"""

from __future__ import annotations

from chatgpt_wecom.daemon.answer.turn import Outcome, Turn
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.policy import check_quota, local_day, next_midnight
from chatgpt_wecom.daemon.events import EventBus
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.store.usage import UsageStore


class Gate:
    def __init__(self, policy: LivePolicy, usage: UsageStore, bus: EventBus) -> None:
        self._policy = policy
        self._usage = usage
        self._bus = bus

    async def admit(self, turn: Turn, text: str) -> Outcome | str:
        """Refuse `text` for its length, a sensitive word or the quota (an Outcome); else the local day
        ("YYYY-MM-DD") to count it against."""
        s, user = turn.settings, turn.row.user_id
        if len(text) > s.max_question_len:
            return self._refuse(turn, "too_long", replies.question_too_long(len(text), s.max_question_len))
        if found := self._policy.words.find(text):
            return self._refuse(turn, "sensitive_word", replies.sensitive_question(found))
        day = local_day(turn.row.received_at, s.zone).isoformat()
        used = await self._usage.used(user, day, turn.row.namespace)
        quota = check_quota(self._policy.lists, user, used, s.max_request, turn.row.namespace)
        if not quota.allowed:
            resets = next_midnight(turn.row.received_at, s.zone)
            return self._refuse(turn, "quota", replies.quota_exhausted(quota.limit, resets, s.timezone))
        return day

    def _refuse(self, turn: Turn, reason: str, reply: str) -> Outcome:
        row = turn.row
        self._bus.publish("question.refused", user=row.user_id, inbox_id=row.id, channel=row.channel, reason=reason)
        return turn.reply(reply)
