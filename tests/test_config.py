"""Configuration: the Go project's keys and env names, validation, and errors that never leak a secret."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from openai._constants import INITIAL_RETRY_DELAY, MAX_RETRY_DELAY

from chatgpt_wecom.config import ConfigError, Settings, load_settings
from chatgpt_wecom.demo.ports import unused_port
from tests.daemon_runner import short_socket_path

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


def test_a_user_list_entry_that_is_no_user_id_is_refused_naming_the_list(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ "alice bob" on allow_users would match nobody and shut everyone out: the same rule as `ctl users add`."""
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, allow_users=["alice bob", "carol"], admin_users=["x|y"], vip_users=["ok.id"]))
    allow, admin = err.value.lines
    assert allow.startswith("allow_users: “alice bob” holds a space, which no user id has")
    assert "list several ids as separate entries" in allow
    assert admin.startswith("admin_users: “x|y” holds “|”")
    monkeypatch.setenv("DENY_USERS", "zhang.san@corp, dingtalk:manager1234, li si")
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path))
    (deny,) = err.value.lines
    assert deny.startswith("deny_users: “li si” holds a space") and "separate them with commas" in deny
    monkeypatch.setenv("DENY_USERS", "zhang.san@corp, dingtalk:manager1234")
    assert load_settings(write(tmp_path)).deny_users == ["zhang.san@corp", "dingtalk:manager1234"]


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


# --- values that travel in HTTP headers, URLs and host names ---------------------------------------------
def test_surrounding_whitespace_of_keys_is_stripped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("APIKEY", "sk-from-a-file\n")  # APIKEY="$(cat key.txt)" keeps a newline with some shells
    settings = load_settings(write(tmp_path, azure_openai_token=" az-key\t", agent_secret="s3cret\r\n"))
    assert settings.api_key.get_secret_value() == "sk-from-a-file"
    assert settings.azure_openai_token.get_secret_value() == "az-key"
    assert settings.agent_secret.get_secret_value() == "s3cret"


@pytest.mark.parametrize(
    ("key", "value", "what"),
    [
        ("api_key", "sk-ａbc-secret", "a non-ASCII character at position 4"),  # a full-width letter from a doc
        ("api_key", "sk-abc secret", "a space at position 7"),
        ("api_key", "sk-abc\u3000secret", "a non-ASCII character at position 7"),  # a full-width space
        ("azure_openai_token", "az\x00key-secret", "a control character at position 3"),
        ("agent_secret", "s3cret\nsecond-line", "a control character at position 7"),
        ("receive_msg_token", "tok秘密", "a non-ASCII character at position 4"),
    ],
)
def test_a_key_that_cannot_travel_in_a_header_is_one_line_naming_it(
    tmp_path: Path, key: str, value: str, what: str
) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, **{key: value}, azure_on=key == "azure_openai_token", azure_resource_name="r",
                            azure_deployment_name="d"))  # fmt: skip
    [line] = err.value.lines
    assert line.startswith(f"{key}: must be printable ASCII without spaces, but holds {what}")
    assert "secret" not in line.replace(f"{key}:", "").split("—")[0]  # no part of the value
    assert value not in line


def test_the_model_and_its_endpoint_accept_real_names_and_refuse_broken_ones(tmp_path: Path) -> None:
    ok = load_settings(write(tmp_path, model=" deepseek-ai/DeepSeek-V3 ", vision_model="llama3.2-vision:11b"))
    assert (ok.model, ok.vision_model) == ("deepseek-ai/DeepSeek-V3", "llama3.2-vision:11b")
    azure_keys = {"azure_on": True, "azure_openai_token": "k"}
    names = {"azure_resource_name": "my-aoai-1", "azure_deployment_name": "gpt-4o.mini_2"}
    azure = load_settings(write(tmp_path, **azure_keys, **names, azure_api_version="2024-10-01-preview"))
    assert (azure.azure_resource_name, azure.azure_deployment_name) == ("my-aoai-1", "gpt-4o.mini_2")

    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, model="gpt-4o\nmini", base_url="https://api.example.com/v1 x"))
    assert [line.split(":")[0] for line in err.value.lines] == ["base_url", "model"]
    assert "line break or other control character" in err.value.lines[1]
    assert "space" in err.value.lines[0]
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, model=""))
    assert err.value.lines == ["model is empty; set the model name the endpoint expects (e.g. gpt-4o-mini)"]
    with pytest.raises(ConfigError) as err:
        names = {"azure_resource_name": "https://my.openai.azure.com", "azure_deployment_name": "gpt/4o"}
        load_settings(write(tmp_path, **azure_keys, **names, azure_api_version="2024 06 01"))
    keys = [line.split(":")[0] for line in err.value.lines]
    assert keys == ["azure_api_version", "azure_resource_name", "azure_deployment_name"]
    assert "the part before .openai.azure.com" in err.value.lines[1]


def test_run_refuses_a_bad_key_with_exit_2_and_one_line(tmp_path: Path) -> None:
    where = {"host": "127.0.0.1", "port": unused_port(), "control_socket": str(short_socket_path())}  # if it ran
    config = write(tmp_path, api_key="sk-ａbcdef", **where)
    env = {k: v for k, v in os.environ.items() if k not in ("APIKEY", "API_KEY")}
    done = subprocess.run(
        [sys.executable, "-m", "chatgpt_wecom", "run", "--config", str(config)],
        capture_output=True, text=True, timeout=30, env=env, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    [line] = done.stderr.splitlines()
    assert line.startswith("chatgpt-wecom: config: api_key: must be printable ASCII without spaces, but holds a n")
    assert "ａbcdef" not in done.stderr and "Traceback" not in done.stderr


APP_KEYS = ("corp_id", "agent_id", "agent_secret", "receive_msg_token", "receive_msg_key")


def write_without_app(tmp_path: Path, **values: object) -> Path:
    import yaml

    path = tmp_path / "config.yml"
    base = {k: v for k, v in BASE.items() if k not in APP_KEYS}
    path.write_text(yaml.safe_dump({**base, **values}, allow_unicode=True), encoding="utf-8")
    return path


def test_the_ai_bot_alone_is_a_configuration(tmp_path: Path) -> None:
    settings = load_settings(write_without_app(tmp_path, wecom_bot_id="aibX", wecom_bot_secret="bot-secret"))
    assert settings.wecom_bot_on and not settings.wecom_app_on and not settings.dingtalk_on
    assert settings.wecom_bot_ws_url == "wss://openws.work.weixin.qq.com"
    assert settings.secrets_set() == {"api_key": True, "azure_openai_token": False, "wecom_bot_secret": True}


def test_half_a_channel_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write_without_app(tmp_path, wecom_bot_id="aibX"))
    assert [line.split(":")[0] for line in err.value.lines] == ["wecom_bot_secret"]
    with pytest.raises(ConfigError) as err:
        load_settings(write_without_app(tmp_path))  # no channel at all: the app's keys are what is missing
    assert [line.split(":")[0] for line in err.value.lines] == list(APP_KEYS)
    with pytest.raises(ConfigError) as err:
        load_settings(
            write_without_app(tmp_path, wecom_bot_id="aibX", wecom_bot_secret="s", wecom_bot_ws_url="http://x")
        )
    assert err.value.lines[0].startswith("wecom_bot_ws_url: must be a URL starting with ws:// or wss://")


def test_dingtalk_credentials_from_the_file_or_the_go_projects_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    apps = [{"client_id": "dingA", "client_secret": "secret-a"}]
    settings = load_settings(write_without_app(tmp_path, credentials=apps, chat_type=2, allow_groups="g1, 研发群"))
    assert settings.dingtalk_on and [a.client_id for a in settings.credentials] == ["dingA"]
    assert settings.chat_type == "2" and settings.allow_groups == ["g1", "研发群"]
    assert settings.run_mode == "stream" and not settings.stream_mode
    assert "secret-a" in settings.secret_values() and "secret-a" not in repr(settings)

    monkeypatch.setenv("DINGTALK_CREDENTIALS", "dingB:secret-b, dingC:secret-c")
    monkeypatch.setenv("RUN_MODE", "http")
    settings = load_settings(write_without_app(tmp_path))
    assert [a.client_id for a in settings.credentials] == ["dingB", "dingC"] and settings.run_mode == "http"
    assert settings.credentials[1].client_secret.get_secret_value() == "secret-c"

    monkeypatch.setenv("DINGTALK_CREDENTIALS", "dingB-without-secret")
    with pytest.raises(ConfigError) as err:
        load_settings(write_without_app(tmp_path))
    assert err.value.lines[0].startswith("credentials: ")


def test_a_bad_dingtalk_secret_is_named_never_shown(tmp_path: Path) -> None:
    apps = [{"client_id": "dingA", "client_secret": "has a space"}]
    with pytest.raises(ConfigError) as err:
        load_settings(write_without_app(tmp_path, credentials=apps))
    assert err.value.lines[0].startswith("credentials.0.client_secret: ") and "has a space" not in str(err.value)


def test_metrics_listen_is_off_by_default_and_a_bad_value_is_one_line(tmp_path: Path) -> None:
    assert load_settings(write(tmp_path)).metrics_listen == ""
    assert load_settings(write(tmp_path, metrics_listen=" 127.0.0.1:9464 ")).metrics_listen == "127.0.0.1:9464"
    assert load_settings(write(tmp_path, metrics_listen="[::1]:9464")).metrics_listen == "[::1]:9464"
    for bad, why in [
        ("9464", "must be host:port, e.g. 127.0.0.1:9464"),
        ("localhost:", "must be host:port, e.g. 127.0.0.1:9464"),
        ("http://127.0.0.1:9464", "must be host:port, e.g. 127.0.0.1:9464"),
        ("127.0.0.1:99999", "port 99999 is not between 1 and 65535"),
        ("127.0.0.1:8090", "must not use port 8090: the callback listens there (port)"),
    ]:
        with pytest.raises(ConfigError) as err:
            load_settings(write(tmp_path, metrics_listen=bad))
        [line] = err.value.lines
        assert line.startswith(f"metrics_listen: {why} (got {bad!r})"), line


def test_retention_days_keeps_everything_unless_set_and_is_never_negative(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert load_settings(write(tmp_path)).retention_days == 0
    assert not load_settings(write(tmp_path, retention_days=None)).retention_days  # `retention_days:` left empty
    assert load_settings(write(tmp_path, retention_days=90)).retention_days == 90
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, retention_days=-1))
    assert err.value.lines[0].startswith("retention_days: ")
    monkeypatch.setenv("RETENTION_DAYS", "30")
    assert load_settings(write(tmp_path, retention_days=90)).retention_days == 30
    monkeypatch.setenv("RETENTION_DAYS", "")  # an empty variable is ignored, as every other one
    assert load_settings(write(tmp_path, retention_days=90)).retention_days == 90


def test_every_problem_is_reported_at_once_the_empty_api_key_included(tmp_path: Path) -> None:
    key = "A" * 20 + "-" + "b" * 22  # 43 characters, one of them not a letter or digit
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, api_key="", agent_id=0, receive_msg_key=key, max_request=-1))
    lines = err.value.lines
    assert [line.split(":")[0].split(" ")[0] for line in lines] == [
        "agent_id", "receive_msg_key", "max_request", "api_key",
    ]  # fmt: skip
    assert lines[0].startswith("agent_id: must be the app's AgentId (应用管理 → app → AgentId), a positive number")
    assert lines[1].startswith("receive_msg_key: must be exactly 43 letters and digits, but holds '-' at position 21")
    assert lines[3].startswith("api_key is empty")
    assert "AAAA" not in str(err.value)  # the key itself is never shown
    with pytest.raises(ConfigError) as azure:
        load_settings(write(tmp_path, azure_on=True, port=0))
    assert [line.split(" ")[0] for line in azure.value.lines] == ["port:", "azure_on"]
    assert "azure_deployment_name, azure_openai_token, azure_resource_name is empty" in azure.value.lines[1]


def test_agent_id_zero_is_refused_only_where_the_wecom_app_is_on(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_settings(write(tmp_path, agent_id=0))
    assert err.value.lines[0].startswith("agent_id: must be the app's AgentId")
    bot_only = {"wecom_bot_id": "bot1", "wecom_bot_secret": "x", "api_key": "k"}
    path = tmp_path / "bot.yml"
    path.write_text("\n".join(f"{k}: {v}" for k, v in bot_only.items()), encoding="utf-8")
    assert load_settings(path).agent_id == 0
