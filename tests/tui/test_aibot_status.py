"""The Status page shows the AI bot's connection: up since, reconnects, last ping's round trip; kicked, and why."""

from __future__ import annotations

import json
from pathlib import Path

import aiohttp

from chatgpt_wecom.tui.formats import Formats
from tests.aibot_runner import BOT_FAST, bot_settings
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot
from tests.tui.conftest import SIZE, connected, screen_text, tui, wait_for


def flat(text: str) -> str:
    return " ".join(text.split())


async def test_the_ai_bot_up_then_kicked(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    async with FakeAIBot() as bot:
        settings = bot_settings(tmp_path, wecom, model, bot)
        async with DaemonRunner(settings, BOT_FAST) as daemon:
            assert daemon.services is not None
            channel = daemon.services.channels["wecom_bot"]
            await bot.wait_for(lambda: channel.detail()["last_ping_rtt_ms"] is not None, what="a ping answered")
            app = tui(settings.socket_path, screen="status", formats=Formats(fixed_time="12:00:00"))
            async with app.run_test(size=SIZE) as pilot:
                await connected(pilot)
                await wait_for(pilot, lambda: "wecom_bot" in screen_text(app), "the AI bot's line")
                lines = screen_text(app).splitlines()
                [line] = [x for x in lines if x.split()[:2] == ["wecom_bot", "✓"]]
                assert line.split() == ["wecom_bot", "✓", "up", "since", "12:00:00", "·", "0", "reconnects"]
                facts = " ".join(" ".join(lines[lines.index(line) + 1 :]).split())  # the facts wrap
                assert facts.startswith(f"namespace wecom · ws_url {settings.wecom_bot_ws_url} · bot_id {bot.bot_id}")
                assert "access token" not in flat(screen_text(app))  # no WeCom app: no token section
                assert "· last_ping_rtt_ms " in facts and "· kicked false" in facts and bot.secret not in facts

                async with aiohttp.ClientSession() as http, http.ws_connect(bot.ws_url) as other:
                    body = {"bot_id": bot.bot_id, "secret": bot.secret}
                    await other.send_str(
                        json.dumps({"cmd": "aibot_subscribe", "headers": {"req_id": "s1"}, "body": body})
                    )
                    await pilot.press("ctrl+r")  # refresh now
                    await wait_for(pilot, lambda: "kicked true" in flat(screen_text(app)), "the kick shown")
                    text = flat(screen_text(app))
    assert "wecom_bot ✗ DOWN" in text
    assert "another instance subscribed with this bot id" in text
