"""Configuration: the Go project's `config.yml` keys and env names, validated once at start-up.

Precedence: environment variables (the Go project's names, e.g. `CORP_ID`, `APIKEY`) override the YAML file, and the
file overrides the defaults. An empty environment variable is ignored, as in the Go project. Lists in the
environment are comma-separated (`ALLOW_USERS=alice,bob`).

A bad value becomes a `ConfigError` whose lines each name one key and never contain a secret. Values that travel
in HTTP headers, URLs and host names are checked here (`config_values`); keys lose surrounding whitespace (a
trailing newline from `$(cat key.txt)`), but a space, control or non-ASCII character inside one is an error.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError, core_schema
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict

from chatgpt_wecom.config_values import dns_label, header_value, listen_address, no_controls, url_segment, url_text
from chatgpt_wecom.user_ids import user_id_problem

log = logging.getLogger(__name__)

DEFAULT_CONFIG_PATH = Path("config.yml")

LEGACY_HELP = (  # the Go project's default reply to 帮助: a config.yml carrying it has not configured its own
    "Commands:\n\n"
    "=================================\n\n"
    "🙋 单聊 👉 单独聊天，缺省\n\n"
    "🗣 串聊 👉 带上下文聊天\n\n"
    "🔃 重置 👉 重置带上下文聊天\n\n"
    "🚀 帮助 👉 显示帮助信息\n\n"
    "================================="
)

UserList = Annotated[list[str], NoDecode]
_SEVERAL_IDS = " (in YAML, list several ids as separate entries; in the environment, separate them with commas)"

_AES_KEY = re.compile(r"[A-Za-z0-9]{43}")
_USERINFO = re.compile(r"//[^/@\s]*@")
_SECRET_FIELDS = frozenset(
    {"agent_secret", "receive_msg_token", "receive_msg_key", "api_key", "azure_openai_token", "wecom_bot_secret",
     "credentials"}
)  # fmt: skip


def redact_userinfo(text: str) -> str:
    """`text` with the user:password part of any URL in it masked (a proxy URL may carry a password)."""
    return _USERINFO.sub("//***@", text)


class ConfigError(Exception):
    """Configuration that cannot run. `lines` are readable, name the key, and hold no secret."""

    def __init__(self, lines: list[str]) -> None:
        super().__init__("\n".join(lines))
        self.lines = lines


def _check_url(value: str, key: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = value.strip()
    if not value:
        return value
    url_text(value)
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"must be a URL starting with {' or '.join(s + '://' for s in schemes)}")
    return value.rstrip("/") if key != "http_proxy" else value


WECOM_APP_KEYS = ("corp_id", "agent_id", "agent_secret", "receive_msg_token", "receive_msg_key")
WECOM_BOT_KEYS = ("wecom_bot_id", "wecom_bot_secret")
_REQUIRED = object()  # stands for a channel key that the channel's other keys (or having no channel) make required


class DingTalkApp(BaseModel):
    """One DingTalk app (its robot): the AppKey and AppSecret (开发者后台 → 应用 → 凭证与基础信息)."""

    client_id: str
    client_secret: SecretStr

    @field_validator("client_id")
    @classmethod
    def _id(cls, value: str) -> str:
        value = header_value(value)
        if not value:
            raise ValueError("is empty")
        return value

    @field_validator("client_secret")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        secret = header_value(value.get_secret_value())
        if not secret:
            raise ValueError("is empty")
        return SecretStr(secret)


def _given(value: Any) -> bool:
    if isinstance(value, int) and not isinstance(value, bool):
        return value != 0  # agent_id: 0 is the default, "no app" (a config written out in full has it)
    text = value.get_secret_value() if isinstance(value, SecretStr) else value
    return text is not None and str(text).strip() != ""


class Settings(BaseSettings):
    """Everything the daemon reads at start-up. Field names are the `config.yml` keys."""

    model_config = SettingsConfigDict(
        case_sensitive=False, env_ignore_empty=True, extra="ignore", validate_default=True
    )

    # --- kept from the Go project -------------------------------------------------------------
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level: debug, info, warning or error."
    )
    corp_id: str = Field("", description="企业ID: My Company → Company Info → CorpID (starts with ww…).")
    agent_id: int = Field(0, description="The self-built app's AgentId, a number such as 1000002.")
    agent_secret: SecretStr = Field(SecretStr(""), description="The app's Secret (应用管理 → app → Secret).")
    receive_msg_token: SecretStr = Field(SecretStr(""), description="接收消息 → 设置API接收 → Token.")
    receive_msg_key: SecretStr = Field(
        SecretStr(""), description="接收消息 → 设置API接收 → EncodingAESKey (43 characters)."
    )
    api_key: SecretStr = Field(
        SecretStr(""),
        validation_alias=AliasChoices("api_key", "apikey"),
        description="Model API key (env APIKEY). Not needed with azure_on.",
    )
    base_url: str = Field(
        "",
        description="Scheme and host of an OpenAI-compatible API; an empty path gets /v1, any other path is "
        "used as given. Empty means OpenAI's own. With azure_on it replaces the Azure endpoint.",
    )
    model: str = Field("gpt-4o-mini", description="Model name sent to the endpoint.")
    session_timeout: int = Field(
        600, ge=1, description="Seconds of silence after which a 串聊 conversation starts afresh."
    )
    max_question_len: int = Field(2048, ge=1, description="Longest question accepted, in characters.")
    max_answer_len: int = Field(2048, ge=1, description="max_tokens for the model's answer.")
    max_text: int = Field(4096, ge=256, description="Token budget of the context sent to the model.")
    http_proxy: str = Field("", description="Proxy for model calls: http://… or socks5://…; empty for none.")
    default_mode: Literal["单聊", "串聊"] = Field("单聊", description="Mode of a user who has not chosen one.")
    max_request: int = Field(0, ge=0, description="Questions per user per day; 0 means no limit.")
    port: int = Field(8090, ge=1, le=65535, description="TCP port of the WeCom callback.")
    service_url: str = Field("", description="Public base URL of this service (used for history links).")
    allow_users: UserList = Field(default_factory=list, description="When non-empty, only these may chat.")
    deny_users: UserList = Field(default_factory=list, description="These may not chat (admins excepted).")
    vip_users: UserList = Field(default_factory=list, description="Never limited by max_request.")
    admin_users: UserList = Field(default_factory=list, description="May use admin commands; never limited.")
    sensitive_words: UserList = Field(
        default_factory=list, description="Questions containing one are refused; in answers they become 🚫."
    )
    help: str = Field(
        "",
        description="The reply to 帮助; empty: the commands this deployment answers (#图片, voice and pictures only "
        "where configured, admin commands only to admins).",
    )
    deny_reply: str = Field(
        "抱歉，你暂时没有使用这个应用的权限。如需开通，请联系管理员。",
        description="The reply to a user the access lists refuse.",
    )
    pause_notice: str = Field(
        "机器人正在维护，暂时不能回答，请稍后再试。",
        description="The reply to everyone but admins while an operator has paused the bot.",
    )
    azure_on: bool = Field(False, description="Send model calls to Azure OpenAI.")
    azure_api_version: str = Field("2024-06-01", description="Azure api-version.")
    azure_resource_name: str = Field("", description="Azure resource: https://{name}.openai.azure.com.")
    azure_deployment_name: str = Field("", description="Azure deployment name.")
    azure_openai_token: SecretStr = Field(SecretStr(""), description="Azure api-key.")

    # --- new keys -------------------------------------------------------------------------------
    wecom_api_base: str = Field(
        "https://qyapi.weixin.qq.com",
        description="WeCom server API base (a reverse proxy with a fixed IP works).",
    )
    wecom_proxy: str = Field(
        "",
        description="Proxy for every WeCom API call: http://… or socks5://… with the fixed IP on the app's trusted-IP "
        "list (企业可信IP); empty: direct.",
    )
    host: str = Field("0.0.0.0", description="Address the callback listens on.")  # noqa: S104
    data_dir: Path = Field(
        Path("data"), description="SQLite, images and the control socket; relative to the config file."
    )
    retention_days: int | None = Field(
        0,
        ge=0,
        description="Days to keep messages: once a day, questions, answers, reply parts and the pictures drawn "
        "or sent that are older are deleted (a message not yet finished or sent stays). Quota counts, the audit "
        "log and each message id (so a late retry is still a duplicate) survive. 0 or empty: keep everything.",
    )
    control_socket: Path | None = Field(None, description="Unix socket of the control API.")
    metrics_listen: str = Field(
        "", description='host:port of the Prometheus /metrics listener, e.g. "127.0.0.1:9464"; empty: off.'
    )

    @field_validator("metrics_listen")
    @classmethod
    def _metrics_listen(cls, value: str, info: core_schema.ValidationInfo) -> str:
        if not value.strip():
            return ""
        _, port = listen_address(value)
        if port == info.data.get("port"):
            raise ValueError(f"must not use port {port}: the callback listens there (port)")
        return value.strip()

    timezone: str = Field("Asia/Shanghai", description="Quotas reset at local midnight in this zone.")
    reply_format: Literal["markdown", "text"] = Field("markdown", description="WeCom message type of answers.")
    stream_answers: bool = Field(
        True, description="Stream answers and send each finished paragraph at once (false: send when complete)."
    )
    image_model: str = Field("dall-e-3", description="Model of #图片 image generation.")
    image_size: str = Field("1024x1024", description="Size of generated images, e.g. 1024x1024.")
    speech_model: str = Field("whisper-1", description="Speech-to-text model for voice messages.")
    vision_model: str = Field("", description="Vision-capable model for image messages; empty: images are not read.")
    azure_image_deployment: str = Field("", description="Azure deployment for #图片 (with azure_on).")
    azure_speech_deployment: str = Field("", description="Azure deployment for speech-to-text (with azure_on).")
    azure_vision_deployment: str = Field("", description="Azure deployment for image messages (with azure_on).")
    history_link_hours: float = Field(24.0, gt=0, le=24 * 30, description="Hours a #查对话 history link stays valid.")
    max_answer_parts: int = Field(
        20,
        ge=2,
        le=100,
        description="Messages one answer may take (WeCom shows a member at most 30 a minute); past that the last "
        "one says the answer was cut and links to the whole of it (with service_url).",
    )
    model_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds to wait for the model's answer: a whole answer that is not streamed; for a "
        "streamed one, each next piece once it has started (a whole streamed answer is cut off after 10 minutes).",
    )
    # A model that never answers is given up after (model_max_retries + 1) × first_token_timeout plus the SDK's
    # backoff between attempts (0.5 s, then 1 s, doubling up to 8 s, less up to 25 % jitter; no Retry-After
    # without a response). With the defaults: 3 × 25 s + 0.5 s + 1 s = 76.5 s, inside the minute and a half a
    # user should wait at most for the apology (tests/test_config.py checks it against the SDK's constants).
    first_token_timeout: float = Field(
        25.0,
        gt=0,
        description="Seconds each attempt may wait for the model to start answering: a streamed answer's first "
        "byte (a silent attempt is retried, model_max_retries times), and connecting for every call; at most "
        "model_timeout.",
    )
    model_max_retries: int = Field(2, ge=0, le=10, description="Retries of a failed model call.")
    max_concurrent_answers: int = Field(
        500,
        ge=1,
        le=5000,
        description="Answers being written at once (each waits on the model); more wait their turn, each person's "
        "messages in order. High, so that a burst of colleagues is answered at the model's pace, not the daemon's.",
    )

    # --- the WeCom AI bot (智能机器人, long connection) ----------------------------------------------
    wecom_bot_id: str = Field("", description="智能机器人 → API 模式 → 长连接: the BotID (turns the AI bot on).")
    wecom_bot_secret: SecretStr = Field(SecretStr(""), description="The AI bot's long-connection Secret.")
    wecom_bot_ws_url: str = Field(
        "wss://openws.work.weixin.qq.com", description="The AI bot's WebSocket endpoint (private deployments differ)."
    )
    wecom_bot_name: str = Field(
        "", description="The AI bot's name as shown in groups (the @mention stripped from questions); empty: any "
        "leading @name is stripped.",
    )  # fmt: skip
    wecom_bot_welcome: str = Field(
        "你好，我是 AI 助手。直接提问即可；发送「帮助」查看可用的命令。",
        description="The AI bot's greeting when a user opens its chat (enter_chat); empty: none.",
    )

    # --- groups (the AI bot and DingTalk; chatgpt-dingtalk's keys) ------------------------------
    chat_type: Literal["0", "1", "2"] = Field(
        "0", description='Where the bot answers: "0" private chats and groups, "1" private chats only, "2" groups only.'
    )
    allow_groups: UserList = Field(
        default_factory=list, description="When non-empty, only these groups (chat ids, or DingTalk group titles)."
    )

    # --- DingTalk (chatgpt-dingtalk's keys) ---------------------------------------------------------
    credentials: Annotated[list[DingTalkApp], NoDecode] = Field(
        default_factory=list,
        validation_alias=AliasChoices("credentials", "dingtalk_credentials"),
        description='DingTalk apps: a list of {client_id, client_secret} (env DINGTALK_CREDENTIALS="id:secret,…"); '
        "turns DingTalk on.",
    )
    run_mode: Literal["stream", "http"] = Field(
        "stream", description="How DingTalk delivers messages: stream (no public IP) or http (signed POSTs to port)."
    )
    stream_mode: bool = Field(
        False,
        description="DingTalk: answers grow in an AI card (打字机) — needs card_template_id, a template whose "
        "markdown is bound to the variable `content`, and the permissions Card.Instance.Write and "
        "Card.Streaming.Write. Off: markdown messages, the first paragraph at once.",
    )
    card_template_id: str = Field("", description="DingTalk AI card template id for stream_mode (it ends in .schema).")
    dingtalk_api_base: str = Field("https://api.dingtalk.com", description="DingTalk OpenAPI base URL.")
    dingtalk_oapi_base: str = Field("https://oapi.dingtalk.com", description="DingTalk legacy API base URL.")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # The YAML file arrives as init kwargs; the environment must win over it.
        return (env_settings, init_settings)

    @field_validator(
        "allow_users", "deny_users", "vip_users", "admin_users", "sensitive_words", "allow_groups", mode="before"
    )
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, list):
            return [str(v).strip() for v in value if v is not None and str(v).strip()]
        return value

    @field_validator("allow_users", "deny_users", "vip_users", "admin_users")
    @classmethod
    def _user_ids(cls, value: list[str]) -> list[str]:
        """An entry that is no user id matches nobody (on allow_users it would shut everyone out): refuse it."""
        problems = [p for entry in value if (p := user_id_problem(entry, several=_SEVERAL_IDS)) is not None]
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("agent_id", "port", mode="before")
    @classmethod
    def _number_from_string(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip()
            if not value:
                raise ValueError("is empty")
        return value

    @field_validator("help")
    @classmethod
    def _help(cls, value: str) -> str:
        return "" if value.strip() == LEGACY_HELP else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _lower_level(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.strip().lower()
            return "warning" if value == "warn" else value
        return value

    @field_validator("chat_type", mode="before")
    @classmethod
    def _chat_type(cls, value: Any) -> Any:
        return str(value).strip() if isinstance(value, int | str) else value

    @field_validator("credentials", mode="before")
    @classmethod
    def _credentials(cls, value: Any) -> Any:
        """The environment's `id:secret,id2:secret2` (chatgpt-dingtalk's DINGTALK_CREDENTIALS), or the YAML list."""
        if value is None:
            return []
        if isinstance(value, str):
            apps = []
            for n, item in enumerate(v.strip() for v in value.split(",") if v.strip()):
                client_id, sep, secret = item.partition(":")
                if not sep:
                    raise ValueError(f"entry {n + 1} must be client_id:client_secret")
                apps.append({"client_id": client_id, "client_secret": secret})
            return apps
        return value

    @model_validator(mode="before")
    @classmethod
    def _channel_keys(cls, data: Any) -> Any:
        """A channel is on when its keys are set; then all of them must be. At least one channel must be on —
        with none configured, the WeCom app's keys are what is reported missing (the most common set-up)."""
        if not isinstance(data, dict):
            return data
        app = {k for k in WECOM_APP_KEYS if _given(data.get(k))}
        bot = {k for k in WECOM_BOT_KEYS if _given(data.get(k))}
        dingtalk = bool(data.get("credentials") or data.get("dingtalk_credentials"))
        required = [k for k in WECOM_BOT_KEYS if bot and k not in bot]
        if app - {"agent_id"} or not (bot or dingtalk):  # agent_id alone (the example's 1000002) turns nothing on
            # agent_id: 0 written out is not "missing": its own check says what it must be
            required += [k for k in WECOM_APP_KEYS if k not in app and (k != "agent_id" or data.get(k) in (None, ""))]
        return {**data, **{k: _REQUIRED for k in required}} if required else data

    @field_validator(*WECOM_APP_KEYS, *WECOM_BOT_KEYS, mode="before")
    @classmethod
    def _required_by_channel(cls, value: Any) -> Any:
        if value is _REQUIRED:
            raise PydanticCustomError("missing", "Field required")
        return value

    @field_validator("corp_id")
    @classmethod
    def _corp_id(cls, value: str) -> str:
        return value.strip()

    @field_validator("receive_msg_key")
    @classmethod
    def _aes_key(cls, value: SecretStr) -> SecretStr:
        key = value.get_secret_value().strip()
        if key and not _AES_KEY.fullmatch(key):
            bad = next((n for n, c in enumerate(key, 1) if not (c.isascii() and c.isalnum())), None)
            if bad is not None:  # one character of a secret, and where: enough to find it, not enough to guess it
                char = key[bad - 1]
                what = f"'{char}'" if "!" <= char <= "~" else "a space" if char == " " else "a non-ASCII character"
                raise ValueError(f"must be exactly 43 letters and digits, but holds {what} at position {bad}")
            raise ValueError(f"must be exactly 43 letters and digits (got {len(key)} characters)")
        return SecretStr(key)

    @field_validator("agent_secret", "receive_msg_token")
    @classmethod
    def _channel_secret(cls, value: SecretStr) -> SecretStr:
        return SecretStr(header_value(value.get_secret_value()))

    @field_validator("api_key", "azure_openai_token")
    @classmethod
    def _header_secret(cls, value: SecretStr) -> SecretStr:
        return SecretStr(header_value(value.get_secret_value()))

    @field_validator("model", "image_model", "speech_model", "vision_model", "image_size")
    @classmethod
    def _model_name(cls, value: str) -> str:
        return no_controls(value)

    @field_validator("azure_deployment_name", "azure_image_deployment", "azure_speech_deployment",
                     "azure_vision_deployment")  # fmt: skip
    @classmethod
    def _deployment(cls, value: str) -> str:
        return url_segment(value)

    @field_validator("azure_api_version")
    @classmethod
    def _api_version(cls, value: str) -> str:
        return header_value(value)

    @field_validator("azure_resource_name")
    @classmethod
    def _resource(cls, value: str) -> str:
        return dns_label(value, ".openai.azure.com")

    @field_validator("wecom_bot_id", "wecom_bot_name")
    @classmethod
    def _bot_text(cls, value: str) -> str:
        return header_value(value)

    @field_validator("wecom_bot_secret")
    @classmethod
    def _bot_secret(cls, value: SecretStr) -> SecretStr:
        return SecretStr(header_value(value.get_secret_value()))

    @field_validator("wecom_bot_ws_url")
    @classmethod
    def _ws_url(cls, value: str) -> str:
        return _check_url(value, "url", ("ws", "wss"))

    @field_validator("base_url", "service_url", "wecom_api_base", "dingtalk_api_base", "dingtalk_oapi_base")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_url(value, "url")

    @field_validator("http_proxy", "wecom_proxy")
    @classmethod
    def _proxy(cls, value: str) -> str:
        return _check_url(value, "http_proxy", ("http", "https", "socks5", "socks5h"))

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("is not a known time zone (e.g. Asia/Shanghai)") from None
        return value

    @field_validator("agent_id")
    @classmethod
    def _agent_id(cls, value: int, info: core_schema.ValidationInfo) -> int:
        if value < 0 or (value == 0 and info.data.get("corp_id")):
            raise ValueError("must be the app's AgentId (应用管理 → app → AgentId), a positive number")
        return value

    @model_validator(mode="wrap")
    @classmethod
    def _every_problem(cls, data: Any, handler: Callable[[Any], Settings]) -> Settings:
        """Every problem at once: the model endpoint's (which spans several keys) together with the keys' own, so
        an empty api_key is not told only after the other keys are fixed."""
        problems = _endpoint_problems(data) if isinstance(data, dict) else []
        try:
            settings = handler(data)
        except ValidationError as exc:
            if not problems:
                raise
            raise _with_problems(exc.title, list(exc.errors()), problems, data) from None
        if problems:
            raise _with_problems(cls.__name__, [], problems, data)
        return settings

    # --- derived --------------------------------------------------------------------------------
    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def socket_path(self) -> Path:
        return self.control_socket or self.data_dir / "control.sock"

    @property
    def database_path(self) -> Path:
        return self.data_dir / "chatgpt-wecom.sqlite3"

    @property
    def wecom_app_on(self) -> bool:
        return bool(self.corp_id)

    @property
    def wecom_bot_on(self) -> bool:
        return bool(self.wecom_bot_id)

    @property
    def dingtalk_on(self) -> bool:
        return bool(self.credentials)

    def secrets_set(self) -> dict[str, bool]:
        """Which secrets of the model and of the channels that are on are configured — never their values."""
        names = ["api_key", "azure_openai_token"]
        names += ["agent_secret", "receive_msg_token", "receive_msg_key"] if self.wecom_app_on else []
        names += ["wecom_bot_secret"] if self.wecom_bot_on else []
        flags = {name: bool(getattr(self, name).get_secret_value()) for name in sorted(names)}
        return {**flags, "credentials": True} if self.dingtalk_on else flags

    def secret_values(self) -> list[str]:
        """Every configured secret's value — for masking them wherever text leaves the daemon, never for showing."""
        values = [getattr(self, name).get_secret_value() for name in _SECRET_FIELDS - {"credentials"}]
        return [v for v in values + [app.client_secret.get_secret_value() for app in self.credentials] if v]


def _raw(data: dict[str, Any], *keys: str) -> str:
    for key in keys:
        value = data.get(key)
        if value is not None:
            text = value.get_secret_value() if isinstance(value, SecretStr) else str(value)
            return text.strip()
    return ""


def _endpoint_problems(data: dict[str, Any]) -> list[str]:
    """What keeps the model endpoint from working, read from the values as given (before they are validated)."""
    azure = data.get("azure_on")
    if isinstance(azure, str):
        azure = azure.strip().lower() in ("1", "true", "yes", "on", "t", "y")
    if azure:
        missing = [k for k in ("azure_deployment_name", "azure_api_version", "azure_openai_token") if not _raw(data, k)]
        if "azure_api_version" not in data:
            missing.remove("azure_api_version")  # its default
        if not _raw(data, "azure_resource_name") and not _raw(data, "base_url"):
            missing.append("azure_resource_name")
        return [f"azure_on is true but {', '.join(missing)} is empty"] if missing else []
    if not _raw(data, "api_key", "apikey"):
        return ["api_key is empty (env APIKEY); set it, or use azure_on with azure_openai_token"]
    if "model" in data and not _raw(data, "model"):
        return ["model is empty; set the model name the endpoint expects (e.g. gpt-4o-mini)"]
    return []


def _with_problems(title: str, errors: list[Any], problems: list[str], data: Any) -> ValidationError:
    """A ValidationError holding `errors` (the keys' own) and `problems` (sentences naming their keys)."""
    line_errors: list[Any] = [
        {"type": e["type"], "loc": e["loc"], "input": e.get("input"), "ctx": e.get("ctx", {})} for e in errors
    ]
    line_errors += [
        {"type": PydanticCustomError("config", "{problem}", {"problem": problem}), "loc": (), "input": data}
        for problem in problems
    ]
    return ValidationError.from_exception_data(title, line_errors)


def _format_error(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
    msg = str(err.get("msg", "is invalid"))
    msg = msg.removeprefix("Value error, ")
    if err.get("type") == "missing":
        msg = "is required"
    key = loc.lower()
    description = Settings.model_fields[key].description if key in Settings.model_fields else None
    line = f"{key}: {msg}" if key else msg
    if key and key.split(".")[0] not in _SECRET_FIELDS and err.get("type") != "missing" and "input" in err:
        line += f" (got {redact_userinfo(str(err['input']))!r})"  # a proxy URL may carry a password
    if description and err.get("type") in {"missing", "value_error", "string_too_short"}:
        line += f" — {description}"
    return line


def read_yaml(path: Path) -> dict[str, Any]:
    """The YAML file as a dict; ConfigError when it cannot be read or is not a mapping."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot read it ({exc.strerror})"]) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError([f"config file {path}: not valid YAML{where}"]) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError([f"config file {path}: must be a mapping of keys to values"])
    return {str(k).lower(): v for k, v in data.items()}


def load_settings(path: Path | None = None, *, require_file: bool = False) -> Settings:
    """Read `path` (default ./config.yml), apply the environment, validate, resolve paths.

    Without `require_file`, a missing default file is fine when the environment supplies the values
    (the Docker way). Raises ConfigError with readable lines.
    """
    path = path or DEFAULT_CONFIG_PATH
    data: dict[str, Any] = {}
    if path.exists() or require_file:
        data = read_yaml(path)
    unknown = sorted(set(data) - set(Settings.model_fields) - {"apikey"})
    if unknown:
        log.warning("config: ignoring unknown keys: %s", ", ".join(unknown))
    try:
        settings = Settings(**data)
    except ValidationError as exc:
        lines = [_format_error(dict(e)) for e in exc.errors()]
        if not path.exists():
            lines.append(f"(no config file at {path}; copy config.example.yml there and fill it in)")
        raise ConfigError(lines) from None
    base = path.resolve().parent
    settings.data_dir = (base / settings.data_dir).resolve()
    if settings.control_socket is not None:
        settings.control_socket = (base / settings.control_socket).resolve()
    return settings


def resolve_socket(config: Path | None = None, socket: Path | None = None) -> Path:
    """The control socket a client should use: `socket` if given, else what config.yml (and the environment's
    CONTROL_SOCKET / DATA_DIR) say, resolved like the daemon does. Needs no secrets and never fails on them."""
    if socket is not None:
        return socket
    path = config or DEFAULT_CONFIG_PATH
    data = read_yaml(path) if path.exists() or config is not None else {}
    env = {k.lower(): v for k, v in os.environ.items() if k in ("CONTROL_SOCKET", "DATA_DIR") and v}
    data.update(env)
    base = path.resolve().parent
    if data.get("control_socket"):
        return (base / str(data["control_socket"])).resolve()
    return (base / str(data.get("data_dir") or "data")).resolve() / "control.sock"
