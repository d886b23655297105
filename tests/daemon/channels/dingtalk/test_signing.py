"""HTTP mode's signature: the known-answer vectors of dingtalk-protocol.md §8, the hour's boundary, every secret."""

from __future__ import annotations

import pytest

from chatgpt_wecom.daemon.channels.dingtalk.signing import MAX_SKEW_MS, calc_sign, verify

VECTORS = [
    ("1684493546276", "client-secret-for-test", "nwBJQmaBLv9+5/sSS/66jcFc1/kGY5wo38L88LOGfRU="),
    ("1577262236757", "this is secret", "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM="),
    ("1733200000000", "钉钉密钥-ünïcode", "uKCSNPjzz5c+fv1ptccH0T80rwnb9PL11qtZF207yM4="),
    ("1684493546276", "invalid-client-secret-for-test", "Xm53740mX20L5HYyWjWZNCyvqntkvN9d30JWz1tJREQ="),
]


@pytest.mark.parametrize(("timestamp", "secret", "sign"), VECTORS)
def test_known_answers(timestamp: str, secret: str, sign: str) -> None:
    assert calc_sign(timestamp, secret) == sign
    assert verify(timestamp, sign, [secret], int(timestamp)) == 0


def test_a_signature_made_with_another_secret_fails() -> None:
    ts, good = VECTORS[0][0], VECTORS[0][2]
    assert verify(ts, good, ["invalid-client-secret-for-test"], int(ts)) is None


def test_the_matching_secret_names_the_app() -> None:
    ts, secret, sign = VECTORS[0]
    assert verify(ts, sign, ["other-secret", secret], int(ts)) == 1


def test_one_hour_either_way_is_accepted_and_a_millisecond_more_is_not() -> None:
    ts, secret, sign = VECTORS[0]
    now = int(ts)
    assert verify(ts, sign, [secret], now + MAX_SKEW_MS) == 0
    assert verify(ts, sign, [secret], now - MAX_SKEW_MS) == 0
    assert verify(ts, sign, [secret], now + MAX_SKEW_MS + 1) is None
    assert verify(ts, sign, [secret], now - MAX_SKEW_MS - 1) is None


@pytest.mark.parametrize("timestamp", ["", "abc", "１６８４", "-1684493546276", "9" * 40])
def test_a_timestamp_that_is_not_milliseconds_is_refused(timestamp: str) -> None:
    assert verify(timestamp, calc_sign(timestamp, "s"), ["s"], 1684493546276) is None


def test_an_empty_sign_is_refused() -> None:
    assert verify(VECTORS[0][0], "", [VECTORS[0][1]], int(VECTORS[0][0])) is None
