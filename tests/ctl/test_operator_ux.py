"""What ctl tells an operator and lets them do when something is stuck or typed wrong: why a conversation is blocked
and `retry`, a reload's errors, bad user ids, the empty allow list, refusals as sentences, times in one zone."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
import yaml

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient, ControlError
from chatgpt_wecom.daemon.pipeline.delivery import DeliveryPolicy
from tests.ctl.conftest import ConfiguredDaemon
from tests.ctl.test_ctl import ENV, ctl, ok
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FOREVER, SEND, FakeWeCom

UNTRUSTED = "not allow to access from your ip, hint: [1700000000_1_abc], from ip: 203.0.113.7, more info at x"
LONG_WAIT = replace(FAST, delivery=DeliveryPolicy(first_pause=300.0, max_pause=300.0, give_up_after=3600.0))


async def _status_until(sock: Path, predicate: object, what: str, timeout: float = 15.0) -> p.Status:
    """Poll the daemon's status until `predicate(status)` holds."""
    deadline = time.monotonic() + timeout
    async with ControlClient(sock) as client:
        while True:
            status = await client.status()
            if predicate(status):  # type: ignore[operator]
                return status
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {status.blocked}")
            await asyncio.sleep(0.02)


# --- blocked deliveries and retry ----------------------------------------------------------------------
async def test_status_says_why_a_conversation_is_blocked_and_retry_ends_the_wait_at_once(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    sock = settings.socket_path
    wecom.fail(SEND, errcode=60020, times=FOREVER, errmsg=UNTRUSTED)
    async with DaemonRunner(settings, LONG_WAIT) as daemon:
        await daemon.ask("u1", "你好", next(MSG_IDS))
        await daemon.ask("u1", "还在吗", next(MSG_IDS))  # queues behind the first answer
        status = await _status_until(sock, lambda s: s.blocked, "u1 to be blocked")
        (blocked,) = status.blocked
        assert (blocked.user, blocked.channel, blocked.chat, blocked.tries) == ("u1", "wecom", "u1", 1)
        assert "errcode 60020" in blocked.reason and blocked.hint is not None and "203.0.113.7" in blocked.hint
        assert blocked.next_try_at - blocked.since >= 299  # the backoff would wait five minutes
        failed = [e for e in status.last_errors if e.kind == "delivery.failed"]
        assert failed and failed[-1].data["hint"] == blocked.hint  # the Live page's ⚠ row can say the fix

        human = await ok(sock, "status")
        assert re.search(
            r"^  u1 \(wecom\) since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d, 1 failed tries, next at ", human.out, re.M
        )
        assert "errcode 60020" in human.out and "fix: add this server's IP (203.0.113.7)" in human.out

        assert (await ok(sock, "retry", "nobody")).lines == ["nothing of nobody waits to be retried"]
        wecom.clear_failures()  # the operator put the IP on the trusted list
        started = time.monotonic()
        retried = await ok(sock, "retry", "u1")
        assert retried.lines[0].startswith("retrying now: 1 blocked conversation(s) (u1)")
        await wecom.wait_for_sent(2, user="u1", timeout=20)
        assert time.monotonic() - started < 60  # not the five minutes of the backoff
        assert wecom.texts_to("u1") == ["echo: 你好", "echo: 还在吗"]
        after = await _status_until(sock, lambda s: not s.blocked, "u1 to be unblocked")
        assert after.blocked == []
        assert (await ok(sock, "retry")).lines == ["no delivery waits to be retried"]


async def test_a_repeated_60020_is_logged_once_and_counted_when_delivery_works_again(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    settings = make_settings(tmp_path, wecom, model)
    wecom.fail(SEND, errcode=60020, times=FOREVER, errmsg=UNTRUSTED)
    async with DaemonRunner(settings) as daemon:  # FAST: a retry every 0.05–0.2 s
        for user in ("u1", "u2", "u3"):
            await daemon.ask(user, "你好", next(MSG_IDS))
        await wecom.wait_for(lambda: len(wecom.requests_to(SEND)) >= 15, timeout=20)
        wecom.clear_failures()
        for user in ("u1", "u2", "u3"):
            await wecom.wait_for_sent(1, user=user, timeout=20)
        await daemon.idle()
    # (the test's own folder, named after it, is in some lines: "created …/test_a_repeated_60020_…/data/…")
    logged = [r.getMessage().replace(str(tmp_path), "<tmp>") for r in caplog.records if r.levelno >= logging.INFO]
    told = [m for m in logged if "60020" in m and "works again" not in m]
    assert len(told) == 1, told
    assert "203.0.113.7" in told[0]  # with the fix: the IP to trust
    (again,) = [m for m in logged if "works again" in m]
    failed = int(re.search(r"after (\d+) failed tries", again).group(1))  # type: ignore[union-attr]
    assert failed >= 15 and "60020" not in again.split("(the last:")[0]


# --- reload --------------------------------------------------------------------------------------------
async def test_reload_of_a_bad_file_prints_each_problem_and_fails(configured: ConfiguredDaemon) -> None:
    config = configured.config
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values.update(max_request=-1, api_key="", timezone="Mars/Olympus")
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    bad = await ctl(None, "--config", str(config), "reload")
    assert (bad.code, bad.out) == (1, "")
    lines = bad.err.splitlines()
    assert (
        lines[0]
        == "chatgpt-wecom: the config file does not validate, so nothing was applied (the daemon runs as it was):"
    )
    assert any(line.startswith("  max_request: ") for line in lines[1:]), lines
    assert any(line.startswith("  timezone: is not a known time zone") for line in lines[1:]), lines
    assert any(line.startswith("  api_key is empty") for line in lines[1:]), lines  # all at once
    assert "see the daemon's log" not in bad.err


# --- user ids and the allow list -----------------------------------------------------------------------
async def test_bad_user_ids_are_refused_each_with_a_sentence_and_nothing_is_added(
    daemon: DaemonRunner,
) -> None:
    sock = daemon.settings.socket_path
    long_id = "x" * 70
    bad = await ctl(sock, "users", "deny", "add", "foo bar,", "ok_1", long_id, "wecom:", "Bad:x")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err.splitlines() == [
        "chatgpt-wecom: nothing was added: these 4 ids are not valid:",
        "  “foo bar,” holds a space, which no user id has — only letters, digits and _ - . @ "
        "(give several ids as separate arguments)",
        f"  “{'x' * 23}…” has 70 characters; a user id has at most 64",
        "  “wecom:” names no user after “wecom:”",
        "  “Bad:x”: before “:” must come a namespace such as wecom or dingtalk (lower-case letters)",
    ]
    assert (await ok(sock, "users", "deny", "list")).lines == ["(none)"]
    one = await ctl(sock, "users", "vip", "add", "a|b")
    assert one.err == (
        "chatgpt-wecom: nothing was added: this id is not valid: “a|b” holds “|”, which no user id has — only "
        "letters, digits and _ - . @\n"
    )
    added = await ok(sock, "users", "deny", "add", "zhang.san@corp", "dingtalk:manager1234", "Li-Si_2")
    assert added.lines == ["added to deny: zhang.san@corp, dingtalk:manager1234, Li-Si_2"]


async def test_the_first_entry_of_an_empty_allow_list_is_warned_about_and_needs_yes(daemon: DaemonRunner) -> None:
    sock = daemon.settings.socket_path
    refused = await ctl(sock, "users", "allow", "add", "alice")  # stdin is not a terminal: no question, a refusal
    assert (refused.code, refused.out) == (1, "")
    assert "the allow list is empty, so everyone may chat" in refused.err
    assert "everyone else gets deny_reply" in refused.err and "(add --yes)" in refused.err
    assert (await ok(sock, "users", "allow", "list")).lines == ["(none)"]
    async with ControlClient(sock) as client:  # the TUI gets the warning to show
        with pytest.raises(ControlError) as warned:
            await client.add_users("allow", ["alice"])
        assert warned.value.code == "confirm_needed" and "only the users on it and admins" in str(warned.value)
    assert (await ok(sock, "users", "allow", "add", "--yes", "alice")).lines == ["added to allow: alice"]
    assert (await ok(sock, "users", "allow", "add", "bob")).lines == ["added to allow: bob"]  # not empty now


async def test_control_api_refusals_of_a_request_are_sentences(daemon: DaemonRunner) -> None:
    async with ControlClient(daemon.settings.socket_path) as client:
        with pytest.raises(ControlError) as long_user:
            await client.playground("y" * 70, "你好")  # refused before sending, the same way as the daemon would
        with pytest.raises(ControlError) as raw:
            await client._request("POST", "/playground", p.WordsChange(words=["x"]))
        with pytest.raises(ControlError) as spaced:
            await client.playground("foo bar", "你好")
        with pytest.raises(ControlError) as none:
            await client.add_users("deny", [])
    assert (long_user.value.code, str(long_user.value)) == (
        "bad_request",
        "The user id has 70 characters; at most 64 are allowed",
    )
    assert raw.value.code == "bad_request" and str(raw.value) == "The user id is required; The text is required"
    assert spaced.value.code == "bad_user_id" and "holds a space" in str(spaced.value)
    assert str(none.value) == "Give at least one user id"
    for err in (long_user.value, raw.value, spaced.value, none.value):
        assert "pydantic" not in str(err) and "validation error" not in str(err).lower()


# --- times ---------------------------------------------------------------------------------------------
async def test_times_are_shown_in_the_configured_timezone_whatever_the_machine_zone(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model, timezone="Asia/Kathmandu")  # +05:45: no machine is near it
    async with DaemonRunner(settings) as daemon:
        await daemon.say("alice", "几点了")
        env = {**ENV, "TZ": "America/New_York"}
        shown = await ctl(settings.socket_path, "conversations", env=env)
        page = p.ExchangePage.model_validate_json((await ok(settings.socket_path, "--json", "conversations")).out)
        status = await ctl(settings.socket_path, "status", env=env)
    assert page.timezone == "Asia/Kathmandu"
    asked = datetime.fromtimestamp(page.items[0].asked_at, ZoneInfo("Asia/Kathmandu")).strftime("%Y-%m-%d %H:%M")
    assert shown.lines[0] == "times in Asia/Kathmandu"
    assert asked in shown.lines[1], shown.lines
    assert re.search(r"^timezone\s+Asia/Kathmandu \(every time shown is in it\)$", status.out, re.M), status.out
