"""The daemon as a process: kill -9 at awkward moments, SIGTERM, and start-up errors."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.store.schema import MIGRATIONS
from tests.daemon_runner import AGENT_ID, DaemonProcess, make_settings, write_config
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner

SIGNER = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, str(AGENT_ID))


async def _ask(url: str, user: str, text: str, msg_id: int) -> None:
    req = SIGNER.text(user, text, msg_id)
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}/ai/callback", params=req.query, data=req.body) as r,
    ):
        assert (r.status, await r.text()) == (200, "")


def _states(settings: Settings) -> dict[str, list[str]]:
    with sqlite3.connect(settings.database_path) as conn:
        return {
            "inbox": [r[0] for r in conn.execute("SELECT state FROM inbox ORDER BY id")],
            "outbox": [r[0] for r in conn.execute("SELECT state FROM outbox ORDER BY id")],
        }


async def test_kill_9_while_the_model_thinks(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonProcess(settings, tmp_path) as daemon:
        model.set_delay(30.0)
        await _ask(daemon.url, "u1", "刚问完就崩了", 1)
        await model.wait_for_requests(1)
        await daemon.kill()
        assert wecom.sent == []
        model.set_delay(0.0)
        await daemon.start()
        await wecom.wait_for_sent(1, user="u1")
        await _ask(daemon.url, "u1", "第二个", 2)
        await wecom.wait_for_sent(2, user="u1")
        assert wecom.texts_to("u1") == ["echo: 刚问完就崩了", "echo: 第二个"]
        assert await daemon.terminate() == 0
    assert _states(settings) == {"inbox": ["done", "done"], "outbox": ["sent", "sent"]}


async def test_kill_9_mid_delivery_sends_only_the_rest(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    answer = "\n\n".join(f"第{n}部分。" + "内容" * 300 for n in range(1, 4))  # three parts of ~1.8 KB
    model.set_reply(answer)
    # Part 1 goes out; part 2 keeps failing until the daemon is killed.
    wecom.fail_when("/cgi-bin/message/send", lambda rec: "第2部分" in str(rec.json), status=503)
    async with DaemonProcess(settings, tmp_path) as daemon:
        await _ask(daemon.url, "u1", "长答案", 1)
        await wecom.wait_for(
            lambda: sum("第2部分" in str(r.json) for r in wecom.requests_to("/cgi-bin/message/send")) >= 2
        )
        await daemon.kill()
        assert len(wecom.texts_to("u1")) == 1
        wecom.clear_failures()  # WeCom is back
        await daemon.start()
        await wecom.wait_for_sent(3, user="u1")
        assert await daemon.terminate() == 0
    texts = wecom.texts_to("u1")
    assert [t[:4] for t in texts] == ["第1部分", "第2部分", "第3部分"]  # part 1 not sent again
    assert len(model.requests) == 1  # the stored answer was reused, not asked again
    assert _states(settings)["outbox"] == ["sent", "sent", "sent"]


async def test_sigterm_finishes_answers_in_flight_and_exits_0(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonProcess(settings, tmp_path) as daemon:
        model.set_delay(1.5)
        await _ask(daemon.url, "u1", "正在回答时停机", 1)
        await model.wait_for_requests(1)
        code = await daemon.terminate()
    assert code == 0
    assert wecom.texts_to("u1") == ["echo: 正在回答时停机"]
    assert "stopped" in daemon.log()


def _cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "PYTHONPATH")}
    return subprocess.run(
        [sys.executable, "-m", "chatgpt_wecom", *args],
        cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_bad_config_is_one_line_per_key_and_exit_2(tmp_path: Path) -> None:
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        'corp_id: "ww1"\nagent_id: ""\nagent_secret: "SECRET-VALUE"\nreceive_msg_token: "t"\n'
        'receive_msg_key: "' + "a" * 42 + '"\napi_key: "sk-live"\nbase_url: "not a url"\n',
        encoding="utf-8",
    )
    result = _cli("run", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3, result.stderr
    assert lines[0].startswith("chatgpt-wecom: config: agent_id:")
    assert any("receive_msg_key" in line and "43" in line for line in lines)
    assert any(line.startswith("chatgpt-wecom: config: base_url:") for line in lines)
    assert "Traceback" not in result.stderr
    assert "SECRET-VALUE" not in result.stderr and "sk-live" not in result.stderr


def test_environment_overrides_the_file(tmp_path: Path, settings: Settings) -> None:
    cfg = write_config(settings, tmp_path / "config.yml")
    result = _cli("run", "--config", str(cfg), cwd=tmp_path, env={"RECEIVE_MSG_KEY": "short"})
    assert result.returncode == 2
    assert "receive_msg_key" in result.stderr


def test_missing_config_file_is_named(tmp_path: Path) -> None:
    result = _cli("run", "--config", str(tmp_path / "nope.yml"), cwd=tmp_path)
    assert result.returncode == 2
    assert "nope.yml" in result.stderr and "Traceback" not in result.stderr


async def test_port_in_use_is_a_clear_error(tmp_path: Path, settings: Settings) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", settings.port)
    try:
        cfg = write_config(settings, tmp_path / "config.yml")
        result = await asyncio.to_thread(_cli, "run", "--config", str(cfg), cwd=tmp_path)
    finally:
        server.close()
        await server.wait_closed()
    assert result.returncode == 1
    assert f"port {settings.port}" in result.stderr and "Traceback" not in result.stderr


async def test_sighup_applies_a_changed_file_and_survives_a_broken_one(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model, admin_users=["boss"], help="旧帮助")
    async with DaemonProcess(settings, tmp_path) as daemon:
        await _ask(daemon.url, "bob", "你好", 1)
        await wecom.wait_for_sent(1, user="bob")
        write_config(settings.model_copy(update={"deny_users": ["bob"], "help": "新帮助"}), daemon.config)
        await daemon.reload()
        await _ask(daemon.url, "bob", "你好", 2)
        await _ask(daemon.url, "carol", "帮助", 3)
        await wecom.wait_for_sent(1, user="carol")
        await wecom.wait_for_sent(2, user="bob")
        daemon.config.write_text("agent_id: [not a number\n", encoding="utf-8")
        await daemon.reload()
        await _ask(daemon.url, "carol", "还在吗", 4)
        await wecom.wait_for_sent(2, user="carol")
        assert await daemon.terminate() == 0
    assert wecom.texts_to("bob")[1] == settings.deny_reply
    assert wecom.texts_to("carol") == ["新帮助", "echo: 还在吗"]
    assert "config not applied" in daemon.log()


async def test_messages_sent_during_the_drain_are_stored_and_answered_after_the_restart(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonProcess(settings, tmp_path) as daemon:
        model.set_delay(2.0)
        await _ask(daemon.url, "u1", "停机前的问题", 1)
        await model.wait_for_requests(1)
        assert daemon.proc is not None
        daemon.proc.send_signal(signal.SIGTERM)
        await _ask(daemon.url, "u2", "停机时发来的消息", 2)  # acked while the daemon drains
        assert await asyncio.wait_for(daemon.proc.wait(), 30) == 0
        assert wecom.texts_to("u1") == ["echo: 停机前的问题"]
        assert wecom.texts_to("u2") == []
        model.set_delay(0.0)
        await daemon.start()
        await wecom.wait_for_sent(1, user="u2")
        assert await daemon.terminate() == 0
    assert wecom.texts_to("u2") == ["echo: 停机时发来的消息"]


async def test_a_second_sigterm_during_the_drain_exits_at_once(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    """An operator who will not wait out the grace period: SIGTERM starts the drain, a second one ends the process
    at once, saying so in one line; the answer it cut short is given after the next start."""
    settings = make_settings(tmp_path, wecom, model)
    async with DaemonProcess(settings, tmp_path) as daemon:
        assert daemon.proc is not None
        model.set_delay(60.0)  # beyond the 20 s grace: the drain cannot end by itself any time soon
        await _ask(daemon.url, "u1", "停机时还在回答", 1)
        await model.wait_for_requests(1)
        daemon.proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: "shutting down" in daemon.log(), what="the drain to begin")
        daemon.proc.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(daemon.proc.wait(), 10)  # well before the grace period would end
        log = daemon.log()
        assert code == 128 + signal.SIGTERM, log
        assert log.count("SIGTERM during the shutdown: exiting now") == 1
        assert "chatgpt_wecom.daemon.main: stopped" not in log  # no orderly stop: it did not wait for one
        assert wecom.texts_to("u1") == []
        model.set_delay(0.0)
        await daemon.start()
        await wecom.wait_for_sent(1, user="u1")
        assert await daemon.terminate() == 0
    assert wecom.texts_to("u1") == ["echo: 停机时还在回答"]


def test_an_unusable_data_dir_is_one_line_and_exit_2(tmp_path: Path, settings: Settings) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where data_dir should be", encoding="utf-8")
    cfg = write_config(settings.model_copy(update={"data_dir": blocker / "data"}), tmp_path / "config.yml")
    result = _cli("run", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("chatgpt-wecom: cannot use") and "data_dir" in result.stderr
    assert "Traceback" not in result.stderr


def _newer(path: Path) -> str:
    """Rolled back after an upgrade without restoring data_dir: a schema this release does not know."""
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    conn.close()
    return (
        f"{path} is at schema version {len(MIGRATIONS) + 1}, from a newer chatgpt-wecom (this release knows up to "
        f"{len(MIGRATIONS)}): run that release, or restore the copy of data_dir made before the upgrade"
    )


def _damaged(path: Path) -> str:
    """Another file restored in its place, or a disk that lost it."""
    path.write_bytes(b"not a database, " * 512)
    return (
        f"{path} is damaged or is not a database (file is not a database): move it away (the daemon then starts "
        "with an empty one) or restore it from a backup"
    )


@pytest.mark.parametrize("make", [_newer, _damaged])
def test_a_database_it_cannot_use_is_one_line_and_exit_2_and_stays_as_it_was(
    make: Callable[[Path], str], tmp_path: Path, settings: Settings
) -> None:
    settings.data_dir.mkdir(mode=0o700, parents=True)
    said = make(settings.database_path)
    before = settings.database_path.read_bytes()
    cfg = write_config(settings, tmp_path / "config.yml")
    result = _cli("run", "--config", str(cfg), cwd=tmp_path)
    assert result.returncode == 2, result.stderr  # like a config error: restarting cannot help
    assert result.stderr.splitlines()[-1] == f"chatgpt-wecom: database: {said}"
    assert "Traceback" not in result.stderr
    assert settings.database_path.read_bytes() == before
    assert not settings.socket_path.exists()
