"""`chatgpt-wecom check` with the AI bot: one subscribe on its WebSocket, also for a config without the app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.aibot_runner import bot_config, bot_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot
from tests.test_check import run_check, the_line


@pytest.fixture
async def bot() -> AsyncIterator[FakeAIBot]:
    async with FakeAIBot() as fake:
        yield fake


async def test_a_config_with_only_the_ai_bot_checks_out(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    settings = bot_settings(tmp_path, wecom, model, bot)
    config = bot_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 0, out + err
    assert (
        the_line(out, "wecom_bot")
        == f"✓ wecom_bot: subscribed to {settings.wecom_bot_ws_url} as {bot.bot_id} (the connection was closed again)"
    )
    assert not [line for line in out.splitlines() if line[2:].startswith("wecom:")]  # no app, no app check
    assert len(bot.sent_frames("aibot_subscribe")) == 1 and bot.connections == 1
    assert bot.secret not in out + err


async def test_a_wrong_ai_bot_secret_is_named_without_it(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot
) -> None:
    settings = bot_settings(tmp_path, wecom, model, bot, app=True, wecom_bot_secret="NOT-THE-SECRET-42")
    config = bot_config(settings, tmp_path / "config.yml")

    code, out, err = await run_check("--config", str(config))

    assert code == 1
    line = the_line(out, "wecom_bot")
    assert line.startswith(f"✗ wecom_bot: {settings.wecom_bot_ws_url} refused bot id {bot.bot_id}: errcode 40001")
    assert "wecom_bot_secret" in line
    assert the_line(out, "wecom").startswith("✓ wecom:")  # the app beside it
    assert "NOT-THE-SECRET-42" not in out + err
    assert len(bot.sent_frames("aibot_subscribe")) == 1


async def test_an_unreachable_ai_bot_endpoint(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = bot_settings(tmp_path, wecom, model, FakeAIBot(), wecom_bot_ws_url="ws://127.0.0.1:9/")
    code, out, _ = await run_check("--config", str(bot_config(settings, tmp_path / "config.yml")))
    assert code == 1
    assert the_line(out, "wecom_bot").startswith("✗ wecom_bot: cannot open ws://127.0.0.1:9: ClientConnectorError")
