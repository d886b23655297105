"""DingTalk HTTP mode end to end: signed POSTs on /dingtalk/callback and on any path (as chatgpt-dingtalk), every
forgery refused before the model, the signing secret choosing the app — and the WeCom app beside it on `/`."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from chatgpt_wecom.daemon.channels.dingtalk.signing import calc_sign
from tests.daemon_runner import FAST, MSG_IDS, DaemonRunner, make_settings
from tests.dingtalk_runner import FAST_DING, dingtalk_settings
from tests.fakes.dingtalk import PRIVATE_SEND, FakeDingTalk
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

APPS = {"ding-app-1": "ding-secret-1", "ding-app-2": "ding-secret-2"}


@pytest.fixture
async def ding() -> AsyncIterator[FakeDingTalk]:
    async with FakeDingTalk(APPS) as fake:
        yield fake


@pytest.fixture
async def daemon(tmp_path: Path, ding: FakeDingTalk, model: FakeModel) -> AsyncIterator[DaemonRunner]:
    async with DaemonRunner(dingtalk_settings(tmp_path, ding, model, run_mode="http"), FAST_DING) as runner:
        yield runner


def signed(secret: str, *, skew_ms: int = 0, sign: str | None = None) -> dict[str, str]:
    ts = str(int(time.time() * 1000) + skew_ms)
    return {"timestamp": ts, "sign": sign if sign is not None else calc_sign(ts, secret)}


async def post(daemon: DaemonRunner, path: str, body: Any, headers: dict[str, str]) -> tuple[int, str]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    headers = {"Content-Type": "application/json; charset=utf-8", **headers}
    async with daemon.http.post(f"{daemon.url}{path}", data=data, headers=headers) as resp:
        return resp.status, await resp.text()


@pytest.mark.parametrize("path", ["/dingtalk/callback", "/", "/any/path"])
async def test_a_signed_post_is_answered(daemon: DaemonRunner, ding: FakeDingTalk, path: str) -> None:
    status, body = await post(daemon, path, ding.message("HTTP 模式", user="ann"), signed("ding-secret-1"))
    assert (status, json.loads(body)) == (200, {})
    await ding.wait_for(lambda: ding.texts(user="ann") == ["echo: HTTP 模式"], what="the answer")
    await daemon.idle()


async def test_a_repeated_post_is_answered_once(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    message = ding.message("重放", user="ben")
    for _ in range(3):
        assert (await post(daemon, "/dingtalk/callback", message, signed("ding-secret-1")))[0] == 200
    await ding.wait_for(lambda: ding.replies(user="ben"), what="the answer")
    await daemon.idle()
    assert ding.texts(user="ben") == ["echo: 重放"]


async def test_forged_stale_unsigned_and_malformed_posts_never_reach_the_model(
    daemon: DaemonRunner, ding: FakeDingTalk, model: FakeModel
) -> None:
    message = ding.message("伪造", user="eve")
    hour = 3_600_000
    cases = [
        ("/dingtalk/callback", message, signed("not-the-secret"), 403),
        ("/dingtalk/callback", message, signed("ding-secret-1", skew_ms=-hour - 5_000), 403),
        ("/dingtalk/callback", message, signed("ding-secret-1", skew_ms=hour + 5_000), 403),
        ("/dingtalk/callback", message, signed("ding-secret-1", sign="bm90IGEgc2lnbg=="), 403),
        ("/dingtalk/callback", message, {}, 401),
        ("/dingtalk/callback", message, {"timestamp": str(int(time.time() * 1000))}, 401),
        ("/", message, {}, 404),  # unsigned on the catch-all: not DingTalk's
        ("/", message, signed("not-the-secret"), 403),
        ("/dingtalk/callback", b"{not json", signed("ding-secret-1"), 400),
        ("/dingtalk/callback", {"msgtype": "text"}, signed("ding-secret-1"), 400),
    ]
    for path, body, headers, expected in cases:
        status, _ = await post(daemon, path, body, headers)
        assert status == expected, (path, headers, status)
    assert daemon.services is not None
    assert await daemon.services.inbox.count_open() == 0
    assert model.requests == [] and ding.delivered == []


async def test_the_second_secret_selects_the_second_app(daemon: DaemonRunner, ding: FakeDingTalk) -> None:
    message = ding.message("第二个应用", user="cat", client_id="ding-app-2", webhook_ttl_ms=0)  # answered by API
    assert (await post(daemon, "/dingtalk/callback", message, signed("ding-secret-2")))[0] == 200
    await ding.wait_for(lambda: ding.replies(user="cat"), what="the answer")
    await daemon.idle()
    (reply,) = ding.replies(user="cat")
    assert (reply.via, reply.client_id) == ("api", "ding-app-2")
    (request,) = ding.requests_to(PRIVATE_SEND)
    assert request.json["robotCode"] == "ding-app-2"


async def test_beside_the_wecom_app_each_takes_its_own_posts_on_the_root_path(
    tmp_path: Path, wecom: FakeWeCom, ding: FakeDingTalk, model: FakeModel
) -> None:
    settings = make_settings(
        tmp_path, wecom, model, run_mode="http", dingtalk_api_base=ding.base_url, dingtalk_oapi_base=ding.base_url,
        credentials=[{"client_id": cid, "client_secret": s} for cid, s in APPS.items()],
    )  # fmt: skip
    async with DaemonRunner(settings, FAST) as daemon:
        status, body = await daemon.post(daemon.signer.text("wu", "企业微信", next(MSG_IDS)), path="/")
        assert (status, body) == (200, "")
        assert (await post(daemon, "/", ding.message("钉钉", user="ding-user"), signed("ding-secret-1")))[0] == 200
        await daemon.idle()
        async with aiohttp.ClientSession() as http, http.get(f"{daemon.url}/healthz") as health:
            assert health.status == 200
    assert wecom.texts_to("wu") == ["echo: 企业微信"]
    assert ding.texts(user="ding-user") == ["echo: 钉钉"]
