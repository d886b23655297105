"""The demo's AI bot: the real demo server dials the built-in AI-bot stand-in, and its chat window shows an answer
growing in place."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import aiohttp

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient
from chatgpt_wecom.demo import demo_socket_path
from chatgpt_wecom.demo.launcher import aibot_page
from chatgpt_wecom.demo.standins import ECHO_LABEL
from tests.test_demo import child_env, short_data_dir, start_server, stop, wait_ready


def test_the_chat_window_is_found_from_status() -> None:
    channel = p.ChannelStatus(name="wecom_bot", namespace="wecom", up=True, detail={"ws_url": "ws://127.0.0.1:5/ws"})
    status = p.Status.model_validate(
        dict(version="1", started_at=0, uptime=1, paused=False, pause_notice="", model="m", model_endpoint="e",
             queue_depth=0,
             open_messages=0, users_today=0, questions_today=0, messages_today=0, secrets={}, last_errors=[],
             config_path=None, data_dir="/d", control_socket="/s", channels=[channel])
    )  # fmt: skip
    assert aibot_page(status) == "http://127.0.0.1:5/"
    assert aibot_page(status.model_copy(update={"channels": []})) is None


async def test_a_newcomer_watches_the_answer_grow_in_the_chat_window(tmp_path: Path) -> None:
    data_dir = short_data_dir()
    log = tmp_path / "demo.log"
    proc = await start_server(data_dir, log, child_env())
    seen: list[dict[str, Any]] = []
    try:
        status = await wait_ready(proc, demo_socket_path(data_dir), log)
        page = aibot_page(status)
        assert page is not None
        async with ControlClient(demo_socket_path(data_dir)) as client, aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while not any(c.name == "wecom_bot" and c.up for c in (await client.status()).channels):
                assert time.monotonic() < deadline, "the demo daemon did not connect to the AI-bot stand-in"
                await asyncio.sleep(0.05)
            async with http.get(page) as resp:
                assert resp.status == 200 and "智能机器人" in await resp.text()
            async with http.post(f"{page}api/ask", json={"text": "你好，机器人"}) as resp:
                assert resp.status == 200
            while True:
                assert time.monotonic() < deadline + 20, f"no finished answer; saw {seen}"
                async with http.get(f"{page}api/chat") as resp:
                    chat = await resp.json()
                bot = [m for m in chat if m["who"] == "bot"]
                if bot:
                    seen.append(bot[-1])
                    if not bot[-1]["growing"]:
                        break
                await asyncio.sleep(0.05)
    finally:
        code = await stop(proc)
    assert code == 0, log.read_text(encoding="utf-8")
    assert seen[-1]["text"].startswith(f"{ECHO_LABEL}你说的是：你好，机器人")
    partial = {m["text"] for m in seen if m["growing"]}
    assert any(text and text != seen[-1]["text"] for text in partial), seen  # it grew where the user could see it
    text = log.read_text(encoding="utf-8")
    assert "chat with it in a browser" in text and "Traceback" not in text
