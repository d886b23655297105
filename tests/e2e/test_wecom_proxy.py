"""`wecom_proxy`: every call to WeCom — the token, each message — leaves through the proxy (HTTP or SOCKS5), the
model's calls do not, and `check` and status say which egress is used."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from chatgpt_wecom.daemon.channels.wecom.check import check
from tests.daemon_runner import DaemonRunner, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.proxy import HttpProxy, Socks5Proxy
from tests.fakes.wecom import FakeWeCom


@pytest.mark.parametrize("kind", ["http", "socks5"])
async def test_every_wecom_call_goes_through_the_proxy(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel, kind: str
) -> None:
    proxy = HttpProxy() if kind == "http" else Socks5Proxy()
    async with proxy:
        settings = make_settings(tmp_path, wecom, model, wecom_proxy=proxy.url)
        async with DaemonRunner(settings) as daemon:
            await daemon.say("alice", "你好")
            assert daemon.services is not None
            [app] = [c for c in (await daemon.services.operator.status()).channels if c.name == "wecom"]
        ok, line = await check(settings)
    assert wecom.texts_to("alice") == ["echo: 你好"]
    wecom_port, model_port = urlsplit(wecom.base_url).port, urlsplit(model.base_url).port
    if isinstance(proxy, HttpProxy):
        paths = [urlsplit(url).path for url in proxy.seen]
        assert paths[:2] == ["/cgi-bin/gettoken", "/cgi-bin/message/send"]
        assert all(urlsplit(url).port == wecom_port for url in proxy.seen)  # never the model
        assert len(proxy.seen) == len(wecom.requests)  # every WeCom call went through (check's gettoken too)
    else:
        assert proxy.seen and all(port == wecom_port for _, port in proxy.seen)
        assert model_port not in {port for _, port in proxy.seen}
    assert app.detail["egress"] == f"through {proxy.url}"
    assert ok and f"calling through {proxy.url} (expires in 7200 s); agent_id " in line


async def test_without_a_proxy_check_says_calls_go_directly(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    ok, line = await check(make_settings(tmp_path, wecom, model))
    assert ok and "calling directly" in line


async def test_a_proxy_password_never_shows(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> None:
    settings = make_settings(tmp_path, wecom, model, wecom_proxy="http://user:Passw0rd@127.0.0.1:9")
    ok, line = await check(settings)
    assert not ok and "Passw0rd" not in line and "//***@127.0.0.1:9" in line
