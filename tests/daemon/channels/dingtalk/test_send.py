"""DingTalk's `send` against FakeDingTalk: the wire mapped to the pipeline's errors (permission, QpsLimit, wrong
secret, invalid recipient), token refresh, image upload reuse, and messages nobody asked for."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatgpt_wecom.daemon.channels.base import Misconfigured, Origin, Outgoing, Rejected, RetryLater
from chatgpt_wecom.daemon.channels.dingtalk.api import DingTalkClient, DingTalkConfigError
from chatgpt_wecom.daemon.channels.dingtalk.channel import DingTalk
from chatgpt_wecom.daemon.channels.retry import ConnectionPolicy, RetryPolicy
from tests.dingtalk_runner import dingtalk_settings
from tests.fakes.dingtalk import GROUP_SEND, PRIVATE_SEND, TOKEN, UPLOAD, FakeDingTalk
from tests.fakes.model import FakeModel, tiny_png

APP, SECRET = "ding-app-1", "ding-secret-1"
RETRY = RetryPolicy(attempts=2, base_delay=0.01, max_delay=0.02, timeout=2.0, config_error_cooldown=60.0)
PERMISSION = {
    "code": "Forbidden.AccessDenied.AccessTokenPermissionDenied", "requestid": "r", "message": "没有调用该接口的权限",
    "accessdenieddetail": {"requiredScopes": ["qyapi_robot_sendmsg"]},
}  # fmt: skip
QPS = {"code": "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi", "requestid": "r", "message": "调用频率超限"}


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk({APP: SECRET}) as fake:
        yield fake


class Reports:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str]] = []

    def __call__(self, what: str, message: str, hint: str) -> None:
        self.calls.append((what, message, hint))


@pytest.fixture
async def channel(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> AsyncIterator[tuple[DingTalk, Reports]]:
    reports = Reports()
    settings = dingtalk_settings(tmp_path, ding, model, run_mode="http")
    async with aiohttp.ClientSession() as http:
        yield DingTalk(settings, http, RETRY, reports, ConnectionPolicy()), reports


def outgoing(
    user: str = "alice", group: str = "", kind: str = "markdown", content: str = "答案", **payload: Any
) -> Outgoing:
    expired = str(int(time.time() * 1000))  # the webhook is past its use: OpenAPI
    base = {"client_id": APP, "conversation_type": "2" if group else "1", "conversation_id": group or "cidP==",
            "session_webhook": "", "session_webhook_expires": expired, "staff_id": user}  # fmt: skip
    origin = Origin("m1", user, group or user, time.time(), {**base, **payload})
    return Outgoing(user, group or user, kind, content, variant=0, origin=origin)


async def test_a_missing_permission_is_misconfigured_naming_it(
    channel: tuple[DingTalk, Reports], ding: FakeDingTalk
) -> None:
    dingtalk, reports = channel
    ding.fail(PRIVATE_SEND, 403, PERMISSION)
    with pytest.raises(Misconfigured) as caught:
        await dingtalk.send(outgoing())
    assert "qyapi_robot_sendmsg" in caught.value.hint and "权限管理" in caught.value.hint
    assert len(reports.calls) == 1 and "qyapi_robot_sendmsg" in reports.calls[0][2]


async def test_qps_limit_asks_to_slow_down_and_is_no_permission_error(
    channel: tuple[DingTalk, Reports], ding: FakeDingTalk
) -> None:
    dingtalk, reports = channel
    ding.fail(GROUP_SEND, 403, QPS)
    with pytest.raises(RetryLater) as caught:
        await dingtalk.send(outgoing(group="cidG=="))
    assert caught.value.slow_down and not isinstance(caught.value, Misconfigured) and reports.calls == []
    await dingtalk.send(outgoing(group="cidG=="))
    assert ding.texts(chat="cidG==") == ["答案"]


async def test_an_invalid_recipient_is_rejected(channel: tuple[DingTalk, Reports], ding: FakeDingTalk) -> None:
    ding.invalid_users.add("ghost")
    with pytest.raises(Rejected):
        await channel[0].send(outgoing(user="ghost"))


async def test_a_refused_token_is_fetched_anew(channel: tuple[DingTalk, Reports], ding: FakeDingTalk) -> None:
    dingtalk, _ = channel
    await dingtalk.send(outgoing())
    ding.fail(PRIVATE_SEND, 401, {"code": "InvalidAuthentication", "message": "token is invalid"})
    await dingtalk.send(outgoing(content="第二条"))
    assert len(ding.requests_to(TOKEN)) == 2
    assert ding.texts(user="alice") == ["答案", "第二条"]


async def test_a_wrong_secret_is_one_clear_error_and_no_retry_storm(ding: FakeDingTalk) -> None:
    async with aiohttp.ClientSession() as http:
        client = DingTalkClient(http, client_id=APP, client_secret="wrong-secret-value", api_base=ding.base_url,
                                oapi_base=ding.base_url, retry=RETRY)  # fmt: skip
        for _ in range(5):
            with pytest.raises(DingTalkConfigError) as caught:
                await client.send_private("alice", "sampleText", {"content": "x"})
    assert len(ding.requests_to(TOKEN)) == 1  # remembered for the cool-down
    assert "凭证与基础信息" in caught.value.hint and "wrong-secret-value" not in str(caught.value)


async def test_an_image_is_uploaded_once_and_reused(
    channel: tuple[DingTalk, Reports], ding: FakeDingTalk, tmp_path: Path
) -> None:
    dingtalk, _ = channel
    path = tmp_path / "cat.png"
    path.write_bytes(tiny_png())
    media_id = await dingtalk.send(outgoing(kind="image", content=str(path)))
    assert media_id is not None and ding.uploads[media_id] == tiny_png()
    (upload,) = ding.requests_to(UPLOAD)
    assert upload.query["access_token"].startswith("tok-")
    again = outgoing(kind="image", content=str(path))
    assert await dingtalk.send(dataclasses.replace(again, media_ref=media_id)) == media_id
    assert len(ding.requests_to(UPLOAD)) == 1
    sent = [r.json for r in ding.requests_to(PRIVATE_SEND)]
    assert [s["msgKey"] for s in sent] == ["sampleImageMsg"] * 2 and media_id in sent[0]["msgParam"]


async def test_a_message_nobody_asked_for_goes_through_openapi(
    channel: tuple[DingTalk, Reports], ding: FakeDingTalk
) -> None:
    await channel[0].send(Outgoing("alice", "alice", "text", "通知", variant=0))
    (request,) = ding.requests_to(PRIVATE_SEND)
    assert request.json["msgKey"] == "sampleText" and request.json["userIds"] == ["alice"]


async def test_a_sender_without_staff_id_cannot_be_answered_after_the_webhook_expired(
    channel: tuple[DingTalk, Reports],
) -> None:
    with pytest.raises(Rejected):
        await channel[0].send(outgoing(user="anon-0123", staff_id=""))
