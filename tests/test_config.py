"""Configuration: the Go project's keys and env names, validation, and errors that never leak a secret."""

from __future__ import annotations

from pathlib import Path

import pytest
from openai._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY

from chatgpt_wecom.config import ConfigError, Settings, load_settings

BASE = {
    "corp_id": "ww1",
    "agent_id": 1000002,
    "agent_secret": "s3cret-value",
    "receive_msg_token": "tok",
    "receive_msg_key": "a" * 43,
    "api_key": "sk-value",
}


def write(tmp_path: Path, **values: object) -> Path:
    import yaml

    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({**BASE, **values}, allow_unicode=True), encoding="utf-8")
    return path


def test_env_overrides_the_file_with_the_go_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIKEY", "from-env")
    monkeypatch.setenv("ALLOW_USERS", "alice, bob")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("MAX_REQUEST", "")  # empty: ignored, as in the Go project
    settings = load_settings(write(tmp_path, max_request=3))
    assert settings.api_key.get_secret_value() == "from-env"
    assert settings.allow_users == ["alice", "bob"]
    assert settings.port == 9000 and settings.max_request == 3
    assert settings.data_dir == (tmp_path / "data").resolve()  # relative to the config file


def test_base_url_and_proxy_errors_do_not_echo_credentials(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, http_proxy="socks4://user:Passw0rd@proxy:1080", base_url="ftp://u:pw@x"))
    text = str(err.value)
    assert "http_proxy" in text and "base_url" in text
    assert "Passw0rd" not in text and ":pw@" not in text


def test_each_bad_key_is_one_line_and_secrets_are_never_shown(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, agent_id="", receive_msg_key="short", agent_secret=""))
    assert [line.split(":")[0] for line in err.value.lines] == ["agent_id", "agent_secret", "receive_msg_key"]
    assert "short" not in str(err.value)


def test_with_the_defaults_a_silent_model_is_given_up_within_a_minute_and_a_half() -> None:
    """Each attempt waits first_token_timeout for the answer to start; the SDK makes model_max_retries more, after
    its backoff (0.5 s doubling, capped; jitter only shortens it). The user must hear back within 90 s."""
    defaults = Settings(**BASE)  # type: ignore[arg-type]
    retries = defaults.model_max_retries
    backoff = sum(min(INITIAL_RETRY_DELAY * 2**n, MAX_RETRY_DELAY) for n in range(retries))
    worst = (retries + 1) * defaults.first_token_timeout + backoff
    assert (retries, defaults.first_token_timeout, backoff, worst) == (2, 25.0, 1.5, 76.5)
    assert worst < 90
    assert defaults.first_token_timeout < defaults.model_timeout  # starting is bounded more tightly than answering


def test_first_token_timeout_from_the_file_or_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(write(tmp_path, first_token_timeout=12.5)).first_token_timeout == 12.5
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, first_token_timeout=0))
    assert err.value.lines[0].startswith("first_token_timeout: ")
    monkeypatch.setenv("FIRST_TOKEN_TIMEOUT", "8")
    assert load_settings(write(tmp_path, first_token_timeout=12.5)).first_token_timeout == 8.0
