"""Settings and tuning for running the real daemon with DingTalk only (no WeCom keys) against FakeDingTalk."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import yaml

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy
from chatgpt_wecom.demo.ports import unused_port
from tests.daemon_runner import FAST, short_socket_path
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.model import FakeModel

CONNECTION = ConnectionPolicy(
    heartbeat=5.0, idle_timeout=10.0, ack_timeout=2.0, first_backoff=0.05, max_backoff=0.4, frame_interval=0.07
)  # an AI card updates every 0.1 s
FAST_DING = replace(
    FAST, connection=CONNECTION, delivery=replace(FAST.delivery, rate_limited_pause=0.3)
)  # a "slow down" pauses briefly


def dingtalk_values(tmp_path: Path, ding: FakeDingTalk, model: FakeModel, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "credentials": [{"client_id": cid, "client_secret": secret} for cid, secret in ding.apps.items()],
        "dingtalk_api_base": ding.base_url,
        "dingtalk_oapi_base": ding.base_url,
        "api_key": "sk-test-key",
        "base_url": model.base_url,
        "host": "127.0.0.1",
        "port": unused_port(),
        "data_dir": str(tmp_path / "data"),
        "control_socket": str(short_socket_path()),
        "model_timeout": 20.0,
        "model_max_retries": 0,
    }
    values.update(overrides)
    return values


def dingtalk_settings(tmp_path: Path, ding: FakeDingTalk, model: FakeModel, **overrides: Any) -> Settings:
    return Settings(**dingtalk_values(tmp_path, ding, model, **overrides))


def write_dingtalk_config(path: Path, values: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path
