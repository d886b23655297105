"""Access decisions and the local day boundary (pure)."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from chatgpt_wecom.daemon.chat.policy import AccessLists, check_quota, local_day, month_start, next_midnight

SHANGHAI = ZoneInfo("Asia/Shanghai")


def test_deny_wins_except_for_admins_and_allow_restricts() -> None:
    lists = AccessLists(allow=frozenset({"Alice"}), deny=frozenset({"alice", "boss"}), admin=frozenset({"BOSS"}))
    assert not lists.may_chat("alice")  # deny beats allow
    assert lists.may_chat("boss")  # admins are never refused
    assert not lists.may_chat("carol")  # allow list not empty
    assert AccessLists().may_chat("anyone")


def test_quota_limits_only_ordinary_users() -> None:
    lists = AccessLists(vip=frozenset({"v"}), admin=frozenset({"a"}))
    assert check_quota(lists, "u", 1, 2).allowed
    assert not check_quota(lists, "u", 2, 2).allowed
    assert check_quota(lists, "V", 99, 2).allowed and check_quota(lists, "a", 99, 2).allowed
    assert check_quota(lists, "u", 99, 0).allowed  # 0 = no limit


def test_the_day_ends_at_local_midnight() -> None:
    before = datetime(2026, 11, 21, 23, 59, tzinfo=SHANGHAI).timestamp()
    assert str(local_day(before, SHANGHAI)) == "2026-11-21"
    assert str(local_day(before + 120, SHANGHAI)) == "2026-11-22"
    assert next_midnight(before, SHANGHAI) == datetime(2026, 11, 22, tzinfo=SHANGHAI)
    assert month_start(before, SHANGHAI) == datetime(2026, 11, 1, tzinfo=SHANGHAI).timestamp()


def test_chat_type_and_allow_groups_decide_where_the_bot_answers() -> None:
    from chatgpt_wecom.daemon.chat.policy import chat_refusal

    assert chat_refusal("0", [], private=True, chat="alice") is None
    assert chat_refusal("0", [], private=False, chat="g1") is None
    assert chat_refusal("1", [], private=False, chat="g1") == "group"
    assert chat_refusal("2", [], private=True, chat="alice") == "private"
    assert chat_refusal("2", ["g1"], private=False, chat="g1") is None
    assert chat_refusal("0", ["g1"], private=False, chat="g2") == "group_not_allowed"
    assert chat_refusal("0", ["研发群"], private=False, chat="cid==", title="研发群") is None  # DingTalk: by title
    assert chat_refusal("0", ["g1"], private=False, chat="g2", admin=True) is None  # admins may use any group
    assert chat_refusal("1", ["g1"], private=False, chat="g1", admin=True) == "group"  # chat_type is for everyone
    assert chat_refusal("0", ["g1"], private=True, chat="alice") is None  # allow_groups is about groups only
