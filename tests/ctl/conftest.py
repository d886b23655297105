"""Fixtures of the ctl tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from chatgpt_wecom.config import Settings, load_settings
from chatgpt_wecom.daemon.main import serve
from tests.daemon_runner import FAST, make_settings, short_socket_path, write_config
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom


@dataclass
class ConfiguredDaemon:
    config: Path
    settings: Settings


@pytest.fixture
async def configured(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> AsyncIterator[ConfiguredDaemon]:
    """A daemon started from a config.yml whose relative data_dir decides where the control socket is."""
    folder = short_socket_path().parent
    config = write_config(make_settings(tmp_path, wecom, model, control_socket=None), folder / "config.yml")
    values = yaml.safe_load(config.read_text(encoding="utf-8"))
    values["data_dir"] = "data"
    config.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    settings = load_settings(config, require_file=True)
    assert settings.socket_path == folder / "data" / "control.sock"
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(settings, FAST, stop, config_path=config, on_ready=lambda _: ready.set()))
    waiter = asyncio.create_task(ready.wait())
    done, _ = await asyncio.wait([task, waiter], return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if task in done:
        task.result()  # the start-up error
    try:
        yield ConfiguredDaemon(config, settings)
    finally:
        stop.set()
        await task
