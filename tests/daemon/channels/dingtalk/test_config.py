"""A configuration with DingTalk alone: chatgpt-dingtalk's keys and env, no WeCom keys needed."""

from __future__ import annotations

from typing import Any

import pytest

from chatgpt_wecom.config import Settings


def test_dingtalk_alone_needs_no_wecom_keys_even_with_the_examples_agent_id() -> None:
    values: dict[str, Any] = {"api_key": "sk", "agent_id": 1000002, "corp_id": "",
                              "credentials": [{"client_id": "a", "client_secret": "b"}]}  # fmt: skip
    settings = Settings(**values)
    assert settings.dingtalk_on and not settings.wecom_app_on


def test_the_environment_takes_chatgpt_dingtalks_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DINGTALK_CREDENTIALS", "id1:secret1, id2:secret2")
    monkeypatch.setenv("RUN_MODE", "http")
    only_key: dict[str, Any] = {"api_key": "sk"}
    settings = Settings(**only_key)
    assert [a.client_id for a in settings.credentials] == ["id1", "id2"] and settings.run_mode == "http"
    assert "secret1" in settings.secret_values()
