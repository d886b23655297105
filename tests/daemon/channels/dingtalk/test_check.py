"""`chatgpt-wecom check` with DingTalk alone (no WeCom keys at all): a token and a Stream ticket per app."""

from __future__ import annotations

from pathlib import Path

from tests.dingtalk_runner import dingtalk_values, write_dingtalk_config
from tests.fakes.dingtalk import GATEWAY, TOKEN, FakeDingTalk
from tests.fakes.model import FakeModel
from tests.test_check import lines_of, run_check, the_line

APPS = {"ding-app-1": "ding-secret-1", "ding-app-2": "ding-secret-2"}


async def test_every_app_gets_a_token_and_a_ticket(tmp_path: Path, model: FakeModel) -> None:
    async with FakeDingTalk(APPS) as ding:
        config = write_dingtalk_config(tmp_path / "config.yml", dingtalk_values(tmp_path, ding, model))
        code, out, err = await run_check("--config", str(config))
    assert code == 0, out + err
    line = the_line(out, "dingtalk")
    assert line.startswith(f"✓ dingtalk: {ding.base_url} (stream mode): ")
    assert "app ding-app-1: access token and Stream ticket ok" in line and "ding-app-2" in line
    assert lines_of(out, "wecom") == []
    assert len(ding.requests_to(TOKEN)) == len(ding.requests_to(GATEWAY)) == 2
    assert "ding-secret" not in out + err


async def test_refused_credentials_name_the_console_setting(tmp_path: Path, model: FakeModel) -> None:
    async with FakeDingTalk(APPS) as ding:
        ding.auth_fail = True
        config = write_dingtalk_config(tmp_path / "config.yml", dingtalk_values(tmp_path, ding, model))
        code, out, _ = await run_check("--config", str(config))
    assert code == 1
    line = the_line(out, "dingtalk")
    assert line.startswith("✗ dingtalk:") and "authFailed" in line and "Stream 模式" in line


async def test_http_mode_needs_only_the_token(tmp_path: Path, model: FakeModel) -> None:
    async with FakeDingTalk(APPS) as ding:
        values = dingtalk_values(tmp_path, ding, model, run_mode="http")
        values["credentials"][1]["client_secret"] = "wrong"
        code, out, _ = await run_check("--config", str(write_dingtalk_config(tmp_path / "config.yml", values)))
    assert code == 1
    line = the_line(out, "dingtalk")
    assert "app ding-app-1: access token ok" in line and "app ding-app-2: DingTalk accessToken" in line
    assert "凭证与基础信息" in line and ding.requests_to(GATEWAY) == []
