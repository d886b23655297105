"""Shared fixtures: stand-in WeCom and model servers on 127.0.0.1, settings pointing at them, a running daemon."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from chatgpt_wecom.config import Settings
from tests.daemon_runner import AGENT_ID, DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_CORP_ID

# Environment variables the daemon reads (the Go project's names); a developer's shell must not leak into tests.
CONFIG_ENV = [
    "LOG_LEVEL",
    "CORP_ID",
    "AGENT_ID",
    "AGENT_SECRET",
    "RECEIVE_MSG_TOKEN",
    "RECEIVE_MSG_KEY",
    "APIKEY",
    "API_KEY",
    "BASE_URL",
    "MODEL",
    "SESSION_TIMEOUT",
    "MAX_QUESTION_LEN",
    "MAX_ANSWER_LEN",
    "MAX_TEXT",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "DEFAULT_MODE",
    "MAX_REQUEST",
    "PORT",
    "SERVICE_URL",
    "ALLOW_USERS",
    "DENY_USERS",
    "VIP_USERS",
    "ADMIN_USERS",
    "SENSITIVE_WORDS",
    "HELP",
    "AZURE_ON",
    "AZURE_API_VERSION",
    "AZURE_RESOURCE_NAME",
    "AZURE_DEPLOYMENT_NAME",
    "AZURE_OPENAI_TOKEN",
    "WECOM_API_BASE",
    "HOST",
    "DATA_DIR",
    "RETENTION_DAYS",
    "CONTROL_SOCKET",
    "METRICS_LISTEN",
    "TIMEZONE",
    "REPLY_FORMAT",
    "MODEL_TIMEOUT",
    "FIRST_TOKEN_TIMEOUT",
    "MODEL_MAX_RETRIES",
    "MAX_ANSWER_PARTS",
    "CHATGPT_WECOM_CONFIG",
    "OPENAI_API_KEY",
    # DingTalk (chatgpt-dingtalk's names): a developer's DINGTALK_CREDENTIALS would turn DingTalk on in every test
    "DINGTALK_CREDENTIALS",
    "CREDENTIALS",
    "RUN_MODE",
    "CHAT_TYPE",
    "ALLOW_GROUPS",
    "STREAM_MODE",
    "CARD_TEMPLATE_ID",
    "DINGTALK_API_BASE",
    "DINGTALK_OAPI_BASE",
]


@pytest.fixture(autouse=True, scope="session")
def _clean_environment() -> Iterator[None]:
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.upper() in CONFIG_ENV}
    os.environ["NO_PROXY"] = "127.0.0.1,localhost"
    yield
    os.environ.update(saved)


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom(corp_id=TEST_CORP_ID, agent_id=AGENT_ID) as fake:
        yield fake


@pytest.fixture
async def model() -> AsyncIterator[FakeModel]:
    async with FakeModel() as fake:
        yield fake


@pytest.fixture
def settings(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> Settings:
    return make_settings(tmp_path, wecom, model)


@pytest.fixture
async def daemon(settings: Settings) -> AsyncIterator[DaemonRunner]:
    async with DaemonRunner(settings) as runner:
        yield runner
