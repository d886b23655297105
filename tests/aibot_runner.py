"""The AI bot's end-to-end helpers: settings with only the AI bot (or beside the app), a fast connection policy."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from chatgpt_wecom.config import WECOM_APP_KEYS, Settings
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy
from tests.daemon_runner import FAST, DaemonProcess, make_settings, write_config
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.fakes.wecom_bot import FakeAIBot

QUICK = ConnectionPolicy(heartbeat=0.2, missed_pongs=2, idle_timeout=1.0, ack_timeout=1.0, first_backoff=0.05,
                         max_backoff=0.8, frame_interval=0.05)  # fmt: skip
BOT_FAST = replace(FAST, connection=QUICK)


def bot_settings(tmp_path: Path, wecom: FakeWeCom, model: FakeModel, bot: FakeAIBot, *, app: bool = False,
                 **overrides: Any) -> Settings:  # fmt: skip
    """The AI bot on the fake; the WeCom app too when `app` (else its keys are empty)."""
    values: dict[str, Any] = {"wecom_bot_id": bot.bot_id, "wecom_bot_secret": bot.secret,
                              "wecom_bot_ws_url": bot.ws_url, "wecom_bot_name": "RobotA"}  # fmt: skip
    values.update(overrides)
    settings = make_settings(tmp_path, wecom, model, **values)
    if app:
        return settings
    dumped = settings.model_dump()
    for key in WECOM_APP_KEYS:
        dumped.pop(key, None)
    return Settings(**dumped)


def bot_config(settings: Settings, path: Path) -> Path:
    """The settings as a config.yml (as an operator writes it: without the app's keys when it is off)."""
    write_config(settings, path)
    values = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not settings.wecom_app_on:
        for key in WECOM_APP_KEYS:
            values.pop(key, None)
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


def bot_process(settings: Settings, workdir: Path) -> DaemonProcess:
    """`chatgpt-wecom run` on `bot_config` (production connection timings: a child gets no Tuning)."""
    process = DaemonProcess(settings, workdir)
    bot_config(settings, process.config)
    return process
