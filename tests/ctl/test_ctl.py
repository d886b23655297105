"""`chatgpt-wecom ctl` as a subprocess against a real daemon on a real control socket.

The daemon runs in the test's event loop, so ctl runs through `asyncio.create_subprocess_exec` and the loop keeps
serving the daemon and the fakes while ctl waits for answers.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import yaml
from pydantic import TypeAdapter

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient
from tests.ctl.conftest import ConfiguredDaemon
from tests.daemon_runner import AGENT_ID, Chat, DaemonRunner, make_settings, short_socket_path
from tests.fakes.channel import MemoryChannel
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN

TIMEOUT = 30.0
ENV = {k: v for k, v in os.environ.items() if k not in ("CHATGPT_WECOM_SOCKET", "CHATGPT_WECOM_CONFIG")}
ENV["PYTHONUTF8"] = "1"
EXCHANGES = TypeAdapter(list[p.Exchange])


@dataclass
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        return self.out.splitlines()


def _command(sock: Path | None, args: tuple[str, ...]) -> list[str]:
    return [sys.executable, "-m", "chatgpt_wecom", "ctl", *(["--socket", str(sock)] if sock else []), *args]


async def ctl(sock: Path | None, *args: str, env: dict[str, str] | None = None) -> Result:
    """Run `chatgpt-wecom ctl [--socket SOCK] ARGS…` and collect its exit code and output."""
    proc = await asyncio.create_subprocess_exec(
        *_command(sock, args), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env or ENV
    )
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


async def ok(sock: Path | None, *args: str) -> Result:
    result = await ctl(sock, *args)
    assert result.code == 0, result
    assert result.err == "", result
    return result


@pytest.fixture
def sock(daemon: DaemonRunner) -> Path:
    return daemon.settings.socket_path


@pytest.fixture
def chat(daemon: DaemonRunner, wecom: FakeWeCom) -> Chat:
    return Chat(daemon, wecom)


# --- status --------------------------------------------------------------------------------------------
async def test_status_human_and_json_never_show_secret_values(
    sock: Path, daemon: DaemonRunner, wecom: FakeWeCom
) -> None:
    human, as_json = await asyncio.gather(ok(sock, "status"), ok(sock, "--json", "status"))
    assert re.search(r"^state\s+answering$", human.out, re.M), human.out
    assert re.search(r"^secrets\s+.*agent_secret set.*azure_openai_token unset", human.out, re.M), human.out
    assert str(sock) in human.out
    status = p.Status.model_validate_json(as_json.out)
    assert status.control_socket == str(sock) and not status.paused
    assert status.secrets == {
        "agent_secret": True,
        "api_key": True,
        "azure_openai_token": False,
        "receive_msg_key": True,
        "receive_msg_token": True,
    }
    for secret in (wecom.secret, TEST_TOKEN, TEST_AES_KEY, daemon.settings.api_key.get_secret_value()):
        assert secret not in human.out + human.err + as_json.out + as_json.err


class CorpBot(MemoryChannel):
    """A second transport of the corp's directory (as the WeCom AI bot is): its own name, the namespace wecom."""

    name = "corpbot"
    namespace = "wecom"


async def test_status_lists_each_channel_with_its_state_and_facts(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    bot = CorpBot(up=False)
    bot.state.reconnects, bot.state.last_error = 3, "the line is busy"
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[bot]):
        human, as_json = await asyncio.gather(
            ok(settings.socket_path, "status"), ok(settings.socket_path, "--json", "status")
        )
    lines = human.lines
    start = lines.index("channels:")
    assert re.fullmatch(r"  wecom    up since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d · 0 reconnects", lines[start + 1])
    facts = f"api_base {wecom.base_url} · corp_id {TEST_CORP_ID} · agent_id {AGENT_ID} · egress directly"
    assert lines[start + 2] == f"           {facts}"
    assert lines[start + 3 : start + 5] == [
        "  corpbot  DOWN · 3 reconnects · last error: the line is busy",
        "           namespace wecom · kind in memory",
    ]
    assert re.search(r"^token\s+", human.out, re.M)  # the WeCom app's token section is still there
    status = p.Status.model_validate_json(as_json.out)
    assert [(c.name, c.namespace, c.up, c.reconnects) for c in status.channels] == [
        ("wecom", "wecom", True, 0),
        ("corpbot", "wecom", False, 3),
    ]


# --- users and words -----------------------------------------------------------------------------------
async def test_deny_list_add_list_remove_changes_who_is_answered(sock: Path, chat: Chat, daemon: DaemonRunner) -> None:
    assert (await ok(sock, "users", "deny", "add", "bob", "carol")).lines == ["added to deny: bob, carol"]
    again = await ok(sock, "users", "deny", "add", "Bob", "dave")
    assert again.lines == ["added to deny: dave", "already on deny: Bob"]
    assert (await ok(sock, "users", "deny", "list")).lines == ["bob", "carol", "dave"]
    assert json.loads((await ok(sock, "--json", "users", "deny", "list")).out) == ["bob", "carol", "dave"]
    assert (await ok(sock, "users", "vip", "list")).lines == ["(none)"]
    assert await chat.say("bob", "在吗") == daemon.settings.deny_reply

    removed = await ok(sock, "--json", "users", "deny", "remove", "bob", "zed")
    assert p.Changed.model_validate_json(removed.out).changed == ["bob"]
    assert (await ok(sock, "users", "deny", "remove", "bob")).lines == ["not on deny: bob"]
    assert await chat.say("bob", "在吗") == "echo: 在吗"


async def test_users_add_needs_ids_and_a_known_list(sock: Path) -> None:
    for result in await asyncio.gather(ctl(sock, "users", "deny", "add"), ctl(sock, "users", "nobody", "list")):
        assert result.code == 2 and "Traceback" not in result.err, result


async def test_sensitive_words_add_and_remove(sock: Path, chat: Chat) -> None:
    assert (await ok(sock, "words", "add", "机密", "secret")).lines == ["added: 机密, secret"]
    assert (await ok(sock, "words", "add", "机密")).lines == ["already there: 机密"]
    words = p.Words.model_validate_json((await ok(sock, "--json", "words", "list")).out)
    assert sorted(words.words) == sorted(["机密", "secret"])
    assert "不允许的词「机密」" in await chat.say("alice", "这是机密吗")

    assert (await ok(sock, "words", "remove", "机密", "没有")).lines == ["removed: 机密", "not there: 没有"]
    assert (await ok(sock, "words", "list")).lines == ["secret"]
    assert await chat.say("alice", "这是机密吗") == "echo: 这是机密吗"


# --- quota ---------------------------------------------------------------------------------------------
async def test_quota_show_and_reset(sock: Path, chat: Chat) -> None:
    for user, text in (("alice", "一"), ("alice", "二"), ("bob", "三")):
        await chat.say(user, text)
    shown = await ok(sock, "quota", "show")
    assert "daily limit: no limit" in shown.lines[0]
    assert re.search(r"^alice\s+2\s+2\s+\d+$", shown.out, re.M), shown.out
    quotas = p.Quotas.model_validate_json((await ok(sock, "--json", "quota", "show")).out)
    assert {u.user_id: u.used_today for u in quotas.users} == {"alice": 2, "bob": 1}

    assert (await ok(sock, "quota", "reset", "alice")).lines == ["cleared 2 count(s) for alice"]
    done = await ok(sock, "--json", "quota", "reset", "--all")
    assert p.QuotaResetDone.model_validate_json(done.out).cleared == 1
    quotas = p.Quotas.model_validate_json((await ok(sock, "--json", "quota", "show")).out)
    assert all(u.used_today == 0 for u in quotas.users)


async def test_quota_reset_wants_exactly_one_of_user_or_all(sock: Path) -> None:
    for result in await asyncio.gather(ctl(sock, "quota", "reset"), ctl(sock, "quota", "reset", "alice", "--all")):
        assert result.code == 2, result
        assert "give either a USER or --all" in result.err and "Traceback" not in result.err


# --- conversations and history -------------------------------------------------------------------------
async def test_conversations_and_history_after_real_exchanges(sock: Path, chat: Chat) -> None:
    await chat.say("alice", "第一个问题")
    await chat.say("bob", "bob asks")
    await chat.say("alice", "second\nquestion")

    newest, human, limited, nobody, markdown, history_json, history_global_json = await asyncio.gather(
        ok(sock, "--json", "conversations"),
        ok(sock, "conversations", "--user", "alice"),
        ok(sock, "--json", "conversations", "--limit", "1"),
        ok(sock, "conversations", "--user", "nobody"),
        ok(sock, "history", "alice"),
        ok(sock, "history", "alice", "--format", "json"),
        ok(sock, "--json", "history", "alice"),
    )
    page = p.ExchangePage.model_validate_json(newest.out)
    assert [(x.user_id, x.question) for x in page.items] == [
        ("alice", "second\nquestion"),
        ("bob", "bob asks"),
        ("alice", "第一个问题"),
    ]
    assert human.lines[0] == "times in Asia/Shanghai"  # the configured timezone (the default)
    assert human.lines[2:4] == ["  Q: second question", "  A: echo: second question"]
    assert re.match(r"#\d+  \d{4}-\d\d-\d\d \d\d:\d\d:\d\d  alice  单聊  \d+\+\d+ tokens$", human.lines[1])
    assert "bob" not in human.out and len(human.lines) == 7
    one = p.ExchangePage.model_validate_json(limited.out)
    assert len(one.items) == 1 and one.next_before == one.items[0].id
    assert nobody.lines == ["no conversations"]

    assert markdown.lines[0] == "# Conversation history of alice"
    assert markdown.out.index("第一个问题") < markdown.out.index("echo: second")
    for result in (history_json, history_global_json):
        items = EXCHANGES.validate_json(result.out)
        assert [x.question for x in items] == ["第一个问题", "second\nquestion"]
        assert items[0].answer == "echo: 第一个问题"


async def test_conversations_tag_a_group_and_another_namespace_not_a_private_wecom_chat(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    memory = MemoryChannel()
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonRunner(settings, extra_channels=[memory]) as daemon:
        await daemon.say("alice", "in WeCom")
        await memory.receive("alice", "in the group", chat="room-7")
        await memory.receive("alice", "in private")
        await daemon.idle()
        human, as_json = await asyncio.gather(
            ok(settings.socket_path, "conversations"), ok(settings.socket_path, "--json", "conversations")
        )
    heads = [line.split("  ", 2)[2] for line in human.lines if line.startswith("#")]
    assert [re.sub(r"  \d+\+\d+ tokens$", "", head) for head in heads] == [
        "alice  memory  单聊",
        "alice  memory · in room-7  单聊",
        "alice  单聊",
    ]
    page = p.ExchangePage.model_validate_json(as_json.out)
    where = [(x.namespace, x.chat) for x in page.items]
    assert where == [("memory", "alice"), ("memory", "room-7"), ("wecom", "alice")]  # --json: the fields, whole


# --- pause, resume, reload -----------------------------------------------------------------------------
async def test_pause_sends_the_notice_and_resume_answers_again(sock: Path, chat: Chat) -> None:
    assert (await ok(sock, "pause", "--notice", "维护中，稍后再来")).lines == [
        "paused; users now get: 维护中，稍后再来"
    ]
    assert await chat.say("alice", "在吗") == "维护中，稍后再来"
    assert "PAUSED — users get: 维护中，稍后再来" in (await ok(sock, "status")).out
    resumed = p.Status.model_validate_json((await ok(sock, "--json", "resume")).out)
    assert not resumed.paused
    assert await chat.say("alice", "在吗") == "echo: 在吗"


async def test_reload_reports_applied_keys_restart_needs_and_a_bad_config(configured: ConfiguredDaemon) -> None:
    config = configured.config
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values.update(deny_reply="走开", port=values["port"] + 1)
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    reloaded = await ok(None, "--config", str(config), "reload")
    assert reloaded.lines == ["applied: deny_reply", "restart needed for: port"]
    again = p.Reloaded.model_validate_json((await ok(None, "-c", str(config), "--json", "reload")).out)
    assert again == p.Reloaded(changed=[], restart_needed=["port"])

    values["max_request"] = -1
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    bad = await ctl(None, "--config", str(config), "reload")
    assert (bad.code, bad.out) == (1, "")
    assert bad.err.splitlines() == [
        "chatgpt-wecom: the config file does not validate, so nothing was applied (the daemon runs as it was):",
        "  max_request: Input should be greater than or equal to 0 (got '-1')",
    ]


async def test_users_list_is_the_directory(sock: Path, chat: Chat) -> None:
    await chat.say("eve", "hello")
    await ok(sock, "users", "vip", "add", "vera")
    human, as_json, only_vera = await asyncio.gather(
        ok(sock, "users", "list"), ok(sock, "--json", "users", "list"), ok(sock, "users", "list", "VER")
    )
    directory = p.Users.model_validate_json(as_json.out)
    assert [(u.namespace, u.user_id, u.questions_today, u.lists) for u in directory.users] == [
        ("wecom", "eve", 1, []),
        ("", "vera", 0, ["vip"]),
    ]
    lines = human.out.splitlines()
    assert lines[0] == f"2 users (today: {directory.day}, {directory.timezone})"
    assert lines[1].split() == ["user", "name", "last", "seen", "today", "lists"]
    assert lines[2].split()[0] == "eve" and lines[2].split()[-1] == "1"
    assert lines[3].split() == ["vera", "-", "0", "vip"]
    head, _, vera = only_vera.out.splitlines()  # TEXT: a part of the id or name, any case
    assert head.startswith("1 users ") and vera.split() == ["vera", "-", "0", "vip"]


# --- events --------------------------------------------------------------------------------------------
class Follower:
    """`ctl events` running in the background, its stdout read line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, sock: Path, *args: str) -> Follower:
        proc = await asyncio.create_subprocess_exec(
            *_command(sock, (*args, "events")), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=ENV
        )
        return cls(proc)

    async def read(self, timeout: float) -> str | None:
        assert self.proc.stdout is not None
        try:
            raw = await asyncio.wait_for(self.proc.stdout.readline(), timeout)
        except TimeoutError:
            return None
        assert raw, f"ctl events ended: {await self.stop()}"
        self.lines.append(raw.decode().rstrip("\n"))
        return self.lines[-1]

    async def read_until(self, predicate: Callable[[str], bool], what: str) -> None:
        deadline = time.monotonic() + TIMEOUT
        while not any(predicate(line) for line in self.lines):
            assert time.monotonic() < deadline, f"no {what} in {self.lines}"
            await self.read(deadline - time.monotonic())

    async def stop(self) -> tuple[int, str]:
        """Ctrl-C, then the exit code and stderr."""
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        _, err = await asyncio.wait_for(self.proc.communicate(), TIMEOUT)
        assert self.proc.returncode is not None
        return self.proc.returncode, err.decode()


async def _until_subscribed(sock: Path, *followers: Follower) -> None:
    """Publish harmless events (resume) until every follower has printed one: then they are subscribed."""
    deadline = time.monotonic() + TIMEOUT
    async with ControlClient(sock) as client:
        while not all(f.lines for f in followers):
            assert time.monotonic() < deadline, "ctl events never printed anything"
            await client.resume()
            for f in followers:
                if not f.lines:
                    await f.read(0.1)


async def test_events_follow_the_live_stream_until_ctrl_c(sock: Path, chat: Chat) -> None:
    as_json, human = await Follower.start(sock, "--json"), await Follower.start(sock)
    try:
        await _until_subscribed(sock, as_json, human)
        assert re.fullmatch(r"\d\d:\d\d:\d\d bot\.resumed\s+- actor=control:\S+", human.lines[0]), human.lines
        await chat.say("eve", "hello events")

        def event(kind: str) -> Callable[[str], bool]:
            return lambda line: (e := p.Event.model_validate_json(line)).kind == kind and e.data.get("user") == "eve"

        await as_json.read_until(event("message.received"), "message.received for eve")
        await as_json.read_until(event("reply.stored"), "reply.stored for eve")
        received = [p.Event.model_validate_json(x) for x in as_json.lines if "message.received" in x]
        assert received[-1].data["text"] == "hello events"
        await human.read_until(lambda line: " message.received " in line and " eve " in line, "a human line")
        assert any("text=hello events" in line for line in human.lines), human.lines
    finally:
        results = [await as_json.stop(), await human.stop()]
    assert results == [(0, ""), (0, "")]


async def test_events_since_replays_what_was_missed_first(sock: Path, chat: Chat) -> None:
    async with ControlClient(sock) as client:
        since = (await client.status()).last_event
    await chat.say("eve", "said before ctl events ran")
    command = ("--json", "events", "--since", str(since))
    as_json = Follower(
        await asyncio.create_subprocess_exec(*_command(sock, command), stdout=asyncio.subprocess.PIPE, env=ENV)
    )
    human = Follower(
        await asyncio.create_subprocess_exec(*_command(sock, command[1:]), stdout=asyncio.subprocess.PIPE, env=ENV)
    )
    try:
        await as_json.read_until(lambda line: '"message.done"' in line, "the replayed message.done")
        head, *replayed = (p.Event.model_validate_json(line) for line in as_json.lines)
        assert (head.kind, head.seq, head.data["since"], head.data["restarted"]) == ("stream.resumed", 0, since, False)
        assert [e.seq for e in replayed] == list(range(since + 1, since + 1 + len(replayed)))
        assert replayed[0].kind == "message.received" and replayed[0].data["text"] == "said before ctl events ran"
        await human.read_until(lambda line: " message.done " in line, "the replayed message.done")
        assert human.lines[0] == f"replaying {head.data['replayed']} kept event(s) after #{since}, then live ones"
    finally:
        for follower in (as_json, human):
            follower.proc.send_signal(signal.SIGINT)
            await asyncio.wait_for(follower.proc.wait(), TIMEOUT)


# --- finding the daemon, and not finding it ------------------------------------------------------------
async def test_daemon_not_running_is_one_line_and_exit_1() -> None:
    nothing = short_socket_path()
    stale = nothing.with_name("stale.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.bind(str(stale))  # a socket file nobody listens on, as a crashed daemon leaves it
    calls = [(path, args) for path in (nothing, stale) for args in (("status",), ("events",))]
    results = await asyncio.gather(*(ctl(path, *args) for path, args in calls))
    for (path, _), result in zip(calls, results, strict=True):
        assert result.code == 1, result
        assert result.out == ""
        assert result.err == f"chatgpt-wecom: the daemon is not running (no answer on {path})\n"


async def test_config_file_locates_the_socket(configured: ConfiguredDaemon, tmp_path: Path) -> None:
    config, socket_path = str(configured.config), str(configured.settings.socket_path)
    by_option, by_config_env, by_socket_env, missing = await asyncio.gather(
        ok(None, "--config", config, "--json", "status"),
        ctl(None, "--json", "status", env={**ENV, "CHATGPT_WECOM_CONFIG": config}),
        ctl(None, "--json", "status", env={**ENV, "CHATGPT_WECOM_SOCKET": socket_path}),
        ctl(None, "--config", str(tmp_path / "nope.yml"), "status"),
    )
    status = p.Status.model_validate_json(by_option.out)
    assert (status.control_socket, status.config_path) == (socket_path, config)
    for result in (by_config_env, by_socket_env):
        assert result.code == 0, result
        assert p.Status.model_validate_json(result.out).control_socket == socket_path
    assert missing.code == 2 and missing.out == ""
    assert missing.err.startswith("chatgpt-wecom: config file ") and missing.err.count("\n") == 1


async def test_events_say_when_the_daemon_closes_the_stream(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    daemon = DaemonRunner(settings)
    await daemon.start()
    follower = await Follower.start(settings.socket_path)
    try:
        await _until_subscribed(settings.socket_path, follower)
    finally:
        await daemon.stop()
        await daemon.http.close()
    await asyncio.wait_for(follower.proc.wait(), TIMEOUT)  # it ends by itself, no Ctrl-C
    code, err = await follower.stop()
    assert code == 1
    assert err.strip() == "chatgpt-wecom: the daemon closed the event stream (it is stopping or restarting)"


# --- text users chose cannot drive the operator's terminal ---------------------------------------------
CLEAR, CLIPBOARD, C1_CSI, RLO = "\x1b[2J", "\x1b]52;c;aGFja2Vk\x07", "\x9b31m", "\u202e"
HOSTILE = f"hi{CLEAR}{CLIPBOARD}{C1_CSI}{RLO}gnp.exe"
SHOWN = "hi\\x1b[2J\\x1b]52;c;aGFja2Vk\\x07\\x9b31m<U+202E>gnp.exe"
RAW = ("\x1b", "\x07", "\x9b", "\u202e")


async def test_every_command_shows_control_and_bidi_characters_visibly(sock: Path, daemon: DaemonRunner) -> None:
    user = f"m{CLEAR}{RLO}"  # the control API refuses such an id (a channel's or the config file's could hold one)
    services = daemon.services
    assert services is not None
    await services.operator.playground(user, f"line one\n{HOSTILE}", "control:test")
    await daemon.idle()
    await services.policy.add_users("deny", [user], "config")
    async with ControlClient(sock) as client:
        await client.add_words([HOSTILE])
    followers = [await Follower.start(sock), await Follower.start(sock, "--json")]
    try:
        await _until_subscribed(sock, *followers)
        async with ControlClient(sock) as client:
            await client.pause(HOSTILE)
        for f in followers:
            await f.read_until(lambda line: "paused" in line, "bot.paused")
    finally:
        stopped = [await f.stop() for f in followers]
    assert stopped == [(0, ""), (0, "")]
    reads = await asyncio.gather(
        ok(sock, "conversations"),
        ok(sock, "history", user),
        ok(sock, "status"),
        ok(sock, "users", "deny", "list"),
        ok(sock, "words", "list"),
        ok(sock, "quota", "show"),
        ok(sock, "--json", "conversations"),
        ok(sock, "history", user, "--format", "json"),
        ok(sock, "--json", "status"),
    )
    changes = await asyncio.gather(  # after the reads above
        ok(sock, "quota", "reset", user),
        ok(sock, "words", "remove", HOSTILE),
        ok(sock, "users", "deny", "remove", user),
    )
    printed = [r.out for r in (*reads, *changes)] + ["\n".join(f.lines) for f in followers]
    for out in printed:
        assert not [c for c in RAW if c in out], out
    conversations, history, status, deny, words, quota, *as_json = (r.out for r in reads)
    reset, removed, undenied = (r.out for r in changes)
    assert f"Q: line one {SHOWN}" in conversations and f"A: echo: line one {SHOWN}" in conversations
    assert "m\\x1b[2J<U+202E>  单聊" in conversations
    assert "# Conversation history of m\\x1b[2J<U+202E>\n" in history
    assert f"\nline one\n{SHOWN}\n" in history  # Markdown keeps its newlines
    assert f"PAUSED — users get: {SHOWN}" in status and any("paused" in line for line in followers[0].lines)
    assert deny == "m\\x1b[2J<U+202E>\n" and words == f"{SHOWN}\n"
    assert "m\\x1b[2J<U+202E>" in quota and reset.endswith(" count(s) for m\\x1b[2J<U+202E>\n")
    assert removed == f"removed: {SHOWN}\n" and undenied == "removed from deny: m\\x1b[2J<U+202E>\n"
    assert SHOWN in "\n".join(followers[0].lines)  # the human event lines
    page = p.ExchangePage.model_validate_json(as_json[0])  # JSON: escaped, and the same values
    assert page.items[0].question == f"line one\n{HOSTILE}" and page.items[0].user_id == user
    assert EXCHANGES.validate_json(as_json[1])[0].answer == f"echo: line one\n{HOSTILE}"
    assert p.Status.model_validate_json(as_json[2]).pause_notice == HOSTILE
    paused = [p.Event.model_validate_json(line) for line in followers[1].lines if "bot.paused" in line]
    assert paused and paused[0].data["notice"] == HOSTILE


async def test_events_refused_past_the_cap_is_one_line(sock: Path, daemon: DaemonRunner) -> None:
    assert daemon.services is not None
    cap = daemon.services.bus.max_subscribers
    async with aiohttp.ClientSession(connector=aiohttp.UnixConnector(path=str(sock), limit=0)) as http:
        held = [await http.get(f"http://daemon{p.API}/events") for _ in range(cap)]
        human, as_json = await asyncio.gather(ctl(sock, "events"), ctl(sock, "--json", "events"))
        for resp in held:
            resp.close()
    for result in (human, as_json):
        assert (result.code, result.out) == (1, ""), result
        assert result.err == (
            f"chatgpt-wecom: too many live-event clients: the daemon serves at most {cap} at once "
            "(TUIs and `ctl events`); close one and try again\n"
        )
