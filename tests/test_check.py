"""`chatgpt-wecom check` as a user runs it: a child process against the stand-in WeCom and model servers."""

from __future__ import annotations

import asyncio
import os
import socket
import sqlite3
import sys
from pathlib import Path

import yaml

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.store.schema import MIGRATIONS
from tests.daemon_runner import DaemonRunner, make_settings, write_config
from tests.fakes.model import FakeModel
from tests.fakes.wecom import AGENT_GET, GETTOKEN, FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_TOKEN

API_KEY = "sk-test-key"  # make_settings' api_key


async def run_check(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """`python -m chatgpt_wecom check ARGS…`: (exit code, stdout, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "chatgpt_wecom", "check", *args,
        stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        cwd=cwd, env={**os.environ, **(env or {})},
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def lines_of(out: str, name: str) -> list[str]:
    return [line for line in out.splitlines() if line[2:].startswith(f"{name}:")]


def the_line(out: str, name: str) -> str:
    [line] = lines_of(out, name)
    return line


def assert_no_secrets(text: str, settings: Settings) -> None:
    for secret in (settings.agent_secret.get_secret_value(), API_KEY, TEST_TOKEN, TEST_AES_KEY):
        assert secret not in text


async def test_all_checks_pass(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 0, out + err
    assert the_line(out, "config") == f"✓ config: {config} is valid"
    assert the_line(out, "data_dir") == f"✓ data_dir: {settings.data_dir} will be created at the first start"
    assert the_line(out, "control socket") == f"✓ control socket: {settings.socket_path} can be created"
    token = f"got an access token from {wecom.base_url}, calling directly (expires in 7200 s)"
    expected = f"✓ wecom: {token}; agent_id {wecom.agent_id} is the app “{wecom.agent_name}”"
    assert the_line(out, "wecom") == expected
    assert the_line(out, "model").startswith(f"✓ model: gpt-4o-mini at {model.base_url[7:]} answered in ")
    assert len(out.splitlines()) == 5 and err == ""
    [request] = model.requests
    assert request.json["max_tokens"] == 5 and len(request.messages) == 1
    assert not settings.data_dir.exists(), "check must not create the data folder"
    assert_no_secrets(out + err, settings)


async def test_wrong_secret_names_the_fix_and_asks_once(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, agent_secret="not-the-app-secret-0123456789")
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    line = the_line(out, "wecom")
    assert line.startswith("✗ wecom: errcode 40001 (invalid credential)")
    assert "agent_secret must be the app's Secret" in line and "for an hour" in line
    assert wecom.token_fetches == 1, "a wrong secret must not be retried (WeCom bans the IP)"
    assert the_line(out, "model").startswith("✓ model:")
    assert "Traceback" not in err
    assert_no_secrets(out + err, settings)


async def test_untrusted_ip_names_the_ip_and_the_fix(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    wecom.fail(GETTOKEN, errcode=60020, times=5)
    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    line = the_line(out, "wecom")
    assert line.startswith("✗ wecom: errcode 60020 (not allow to access from your ip)")
    assert "add this server's IP (127.0.0.1) to the app's 企业可信IP" in line
    assert wecom.token_fetches == 1
    assert err == ""
    assert_no_secrets(out + err, settings)


async def test_wecom_unreachable(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    await wecom.close()
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    line = the_line(out, "wecom")
    assert line.startswith(f"✗ wecom: cannot get an access token from {wecom.base_url} (directly): ")
    host_port = wecom.base_url.removeprefix("http://")
    assert line.endswith(f": cannot connect to {host_port} (Connection refused)"), line
    assert "ssl:default" not in line  # aiohttp's wording, misleading for an http:// URL
    assert err == "", "the check line says it all: no log lines besides"


async def test_model_down(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    model.down()
    settings = make_settings(tmp_path, wecom, model, model_max_retries=3)
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    assert the_line(out, "model") == f"✗ model: gpt-4o-mini at {model.base_url[7:]} failed with HTTP 503"
    assert the_line(out, "wecom").startswith("✓ wecom:")
    assert len(model.requests) == 1, "check makes one model call, without retries"
    assert err == ""
    assert_no_secrets(out + err, settings)


async def test_a_model_that_does_not_answer_in_time_names_first_token_timeout(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    """Five tokens take about as long as the first: the daemon's time for an answer to start is the check's too."""
    model.stall()
    settings = make_settings(tmp_path, wecom, model, first_token_timeout=0.5, model_timeout=20.0)
    config = write_config(settings, tmp_path / "config.yml")
    code, out, _err = await run_check("--config", str(config))
    assert code == 1
    assert the_line(out, "model") == (
        f"✗ model: gpt-4o-mini at {model.base_url[7:]} did not answer within 0.5 s (first_token_timeout)"
    )
    assert len(model.requests) == 1


async def test_model_refuses_the_key(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    model.expected_key = "sk-the-right-one"
    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    assert "refused the credentials (HTTP 401" in the_line(out, "model")
    assert "check api_key" in the_line(out, "model")
    assert_no_secrets(out + err, settings)


async def test_bad_config_is_every_problem_and_no_network(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    config = write_config(make_settings(tmp_path, wecom, model), tmp_path / "config.yml")
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values["receive_msg_key"] = "x" * 42
    del values["agent_id"]
    config.write_text(yaml.safe_dump(values), encoding="utf-8")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    assert "Traceback" not in out + err
    config_lines = lines_of(out, "config")
    assert len(config_lines) == 2 and all(line.startswith("✗ config: ") for line in config_lines)
    assert any(line.startswith("✗ config: agent_id: is required") for line in config_lines)
    assert any(
        line.startswith("✗ config: receive_msg_key: must be exactly 43 letters and digits (got 42")
        for line in config_lines
    )
    assert out.splitlines()[-1] == "– data_dir, control socket, wecom, model: skipped until the config is valid"
    assert wecom.requests == [] and model.requests == []
    assert "x" * 42 not in out + err


async def test_missing_and_unreadable_config_files(tmp_path: Path) -> None:
    code, out, err = await run_check("--config", str(tmp_path / "nope.yml"))
    assert code == 1 and "Traceback" not in err
    assert the_line(out, "config").startswith(f"✗ config: config file {tmp_path / 'nope.yml'}: cannot read it")

    (tmp_path / "broken.yml").write_text("corp_id: [unclosed\n", encoding="utf-8")
    code, out, _ = await run_check("--config", str(tmp_path / "broken.yml"))
    assert code == 1
    assert the_line(out, "config").startswith("✗ config: config file ") and "not valid YAML" in out


async def test_environment_alone(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    env = {
        "CORP_ID": settings.corp_id,
        "AGENT_ID": str(settings.agent_id),
        "AGENT_SECRET": wecom.secret,
        "RECEIVE_MSG_TOKEN": TEST_TOKEN,
        "RECEIVE_MSG_KEY": TEST_AES_KEY,
        "APIKEY": API_KEY,
        "BASE_URL": model.base_url,
        "WECOM_API_BASE": wecom.base_url,
        "CONTROL_SOCKET": str(settings.socket_path),
    }

    code, out, err = await run_check(cwd=tmp_path, env=env)

    assert code == 0, out + err
    expected = f"✓ config: valid, from the environment alone (no config file at {tmp_path / 'config.yml'})"
    assert the_line(out, "config") == expected
    assert the_line(out, "data_dir") == f"✓ data_dir: {tmp_path / 'data'} will be created at the first start"
    assert_no_secrets(out + err, settings)


async def test_unknown_keys_are_mentioned_not_logged(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    config = write_config(make_settings(tmp_path, wecom, model), tmp_path / "config.yml")
    config.write_text(config.read_text(encoding="utf-8") + "proxy_mode: http\n", encoding="utf-8")

    code, out, err = await run_check("--config", str(config))

    assert code == 0 and err == ""
    assert the_line(out, "config") == f"✓ config: {config} is valid (ignoring unknown keys: proxy_mode)"


async def test_a_running_daemon_is_reported_and_left_alone(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")

    async with DaemonRunner(settings) as daemon:
        code, out, _ = await run_check("--config", str(config))
        assert code == 0, out
        line = the_line(out, "control socket")
        assert line.startswith(f"✓ control socket: a daemon is running and answers on {settings.socket_path} (up ")
        assert the_line(out, "data_dir") == f"✓ data_dir: {settings.data_dir} is writable"
        async with daemon.http.get(f"{daemon.url}/healthz") as resp:
            assert resp.status == 200
        assert settings.socket_path.exists()


async def test_another_daemons_socket_is_a_failure(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    running = make_settings(tmp_path / "a", wecom, model)
    mine = make_settings(tmp_path / "b", wecom, model, control_socket=running.socket_path)
    config = write_config(mine, tmp_path / "config.yml")

    async with DaemonRunner(running):
        code, out, _ = await run_check("--config", str(config))

    assert code == 1
    line = the_line(out, "control socket")
    assert line.startswith(f"✗ control socket: another daemon is running on {running.socket_path}")


async def test_stale_and_wrong_socket_files(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as dead:
        dead.bind(str(settings.socket_path))  # bound, never listening: what a crash leaves behind

    code, out, _ = await run_check("--config", str(config))
    assert code == 0, out
    assert "the stale socket of an earlier run will be replaced" in the_line(out, "control socket")
    assert settings.socket_path.exists(), "check must not remove anything"

    settings.socket_path.unlink()
    settings.socket_path.write_text("not a socket", encoding="utf-8")
    code, out, _ = await run_check("--config", str(config))
    assert code == 1
    assert the_line(out, "control socket") == (
        f"✗ control socket: {settings.socket_path} exists and is not a socket; remove it or set control_socket"
    )


async def test_socket_path_too_long_and_data_dir_not_a_folder(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    (tmp_path / "file").write_text("", encoding="utf-8")
    long_socket = tmp_path / ("s" * 120) / "control.sock"
    settings = make_settings(tmp_path, wecom, model, data_dir=tmp_path / "file", control_socket=long_socket)
    config = write_config(settings, tmp_path / "config.yml")

    code, out, _ = await run_check("--config", str(config))

    assert code == 1
    assert the_line(out, "data_dir") == f"✗ data_dir: {tmp_path / 'file'} is not a folder; set data_dir to a folder"
    assert "is longer than 107 bytes; set control_socket to a shorter path" in the_line(out, "control socket")


async def test_an_endpoint_that_is_not_an_openai_api_is_a_verdict_not_a_traceback(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    from aiohttp import web

    async def html(_request: web.Request) -> web.Response:
        return web.Response(text="<html><body>Welcome to nginx!</body></html>", content_type="text/html")

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", html)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        settings = make_settings(tmp_path, wecom, model, base_url=f"http://127.0.0.1:{port}")
        code, out, err = await run_check("--config", str(write_config(settings, tmp_path / "config.yml")))
    finally:
        await runner.cleanup()
    assert code == 1
    assert the_line(out, "model").startswith("✗ model:") and "OpenAI-compatible" in the_line(out, "model")
    assert "Traceback" not in out + err


async def test_a_password_in_wecom_api_base_is_never_printed(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    base = wecom.base_url.replace("http://", "http://ops:Hunter2pass@")
    settings = make_settings(tmp_path, wecom, model, wecom_api_base=base)
    _, out, err = await run_check("--config", str(write_config(settings, tmp_path / "config.yml")))
    assert "Hunter2pass" not in out + err
    assert "***@" in the_line(out, "wecom")


async def test_a_key_pasted_with_a_full_width_letter_is_a_config_verdict(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    pasted = "sk-test-ｋey-4f1c9"  # one full-width letter, as copied from a document in Chinese
    config = write_config(make_settings(tmp_path, wecom, model), tmp_path / "config.yml")
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values["api_key"] = pasted
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")

    code, out, err = await run_check("--config", str(config))

    assert code == 1 and "Traceback" not in out + err
    assert the_line(out, "config").startswith(
        "✗ config: api_key: must be printable ASCII without spaces, but holds a non-ASCII character at position 9"
    )
    assert out.splitlines()[-1] == "– data_dir, control socket, wecom, model: skipped until the config is valid"
    assert model.requests == [] and wecom.requests == []
    assert pasted not in out + err and "4f1c9" not in out + err


async def test_agent_id_of_another_app_is_named_with_its_fix(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model, agent_id=wecom.agent_id + 1)
    config = write_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1, out + err
    line = the_line(out, "wecom")
    assert line.startswith(f"✗ wecom: got an access token from {wecom.base_url}")
    assert f"but agent_id {wecom.agent_id + 1} is not the app whose Secret is agent_secret: errcode 60011" in line
    assert line.endswith("set agent_id to that app's AgentId (应用管理 → app → AgentId)")
    assert [r.query["agentid"] for r in wecom.requests_to(AGENT_GET)] == [str(wecom.agent_id + 1)]
    assert_no_secrets(out + err, settings)


RELEASE_0_1_0 = Path(__file__).resolve().parent / "data" / "release-0.1.0.sql"  # its schema: version 4


async def test_the_database_an_upgrade_would_migrate_is_named_and_a_newer_or_damaged_one_refused(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    settings = make_settings(tmp_path, wecom, model)
    config = write_config(settings, tmp_path / "config.yml")
    settings.data_dir.mkdir(mode=0o700, parents=True)
    with sqlite3.connect(settings.database_path) as conn:
        conn.executescript(RELEASE_0_1_0.read_text(encoding="utf-8"))
    conn.close()
    latest = len(MIGRATIONS)

    code, out, _ = await run_check("--config", str(config))
    assert code == 0, out
    assert the_line(out, "data_dir") == (
        f"✓ data_dir: {settings.data_dir} is writable; the next start upgrades the database from schema version 4 "
        f"to {latest} (copy {settings.data_dir} first to be able to go back)"
    )

    with sqlite3.connect(settings.database_path) as conn:  # as a newer release would leave it
        conn.execute(f"PRAGMA user_version = {latest + 1}")
    conn.close()
    code, out, _ = await run_check("--config", str(config))
    assert code == 1
    assert the_line(out, "data_dir") == (
        f"✗ data_dir: {settings.database_path} is at schema version {latest + 1}, from a newer chatgpt-wecom "
        f"(this release knows up to {latest}): run that release, or restore the copy of data_dir made before "
        "the upgrade"
    )

    settings.database_path.write_bytes(b"not a database, " * 512)  # another file restored in its place
    code, out, _ = await run_check("--config", str(config))
    assert code == 1
    assert the_line(out, "data_dir") == (
        f"✗ data_dir: {settings.database_path} is damaged or is not a database (file is not a database): move it "
        "away (the daemon then starts with an empty one) or restore it from a backup"
    )
