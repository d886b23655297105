"""The callback endpoint: URL check, acks, and refusal of hostile input — driven over real HTTP."""

from __future__ import annotations

import base64
import os
import time

import pytest
from yarl import URL

from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_TOKEN, CallbackSigner, SignedRequest


async def test_url_check_answers_the_decrypted_echostr(daemon: DaemonRunner) -> None:
    status, body = await daemon.get(daemon.signer.url_check("1616140317555161061"))
    assert (status, body) == (200, "1616140317555161061")


async def test_url_check_with_raw_plus_in_echostr(daemon: DaemonRunner) -> None:
    """aiohttp turns a raw '+' into a space; the daemon must still verify (protocol notes §2.1)."""
    for n in range(40):  # find an echostr whose Base64 has a '+'
        req = daemon.signer.url_check(f"echo-{n}")
        if "+" in req.query["echostr"]:
            break
    else:
        pytest.fail("no '+' in 40 echostrs")
    raw = "&".join(f"{k}={v}" for k, v in req.query.items())  # '+' left unencoded on purpose
    async with daemon.http.get(URL(f"{daemon.url}/ai/callback?{raw}", encoded=True)) as resp:
        assert (resp.status, await resp.text()) == (200, f"echo-{n}")


async def test_any_other_path_is_the_callback_too(daemon: DaemonRunner, wecom: FakeWeCom) -> None:
    status, body = await daemon.get(daemon.signer.url_check("42"), path="/wecom/legacy")
    assert (status, body) == (200, "42")
    status, body = await daemon.post(daemon.signer.text("lisi", "你好", 77), path="/")
    assert (status, body) == (200, "")
    await wecom.wait_for_sent(1, user="lisi")


async def test_healthz(daemon: DaemonRunner) -> None:
    async with daemon.http.get(f"{daemon.url}/healthz") as resp:
        assert resp.status == 200
        assert (await resp.json())["status"] == "ok"


async def test_events_are_acked_and_ignored(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    for event in ("enter_agent", "subscribe", "click", "LOCATION"):
        assert await daemon.post(daemon.signer.event("zhangsan", event, "k")) == (200, "")
    # A text message afterwards is answered, and is the only thing that reached the model.
    await daemon.ask("zhangsan", "在吗", 1)
    await wecom.wait_for_sent(1, user="zhangsan")
    assert len(model.requests) == 1


async def test_media_gets_a_short_text_only_reply(daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom) -> None:
    image = (
        f"<xml><ToUserName><![CDATA[{daemon.signer.corp_id}]]></ToUserName><FromUserName><![CDATA[wangwu]]></FromUserName>"
        "<CreateTime>1700000000</CreateTime><MsgType><![CDATA[image]]></MsgType>"
        "<PicUrl><![CDATA[http://example.invalid/p.jpg]]></PicUrl><MediaId><![CDATA[m1]]></MediaId>"
        "<MsgId>9000000000000000001</MsgId><AgentID>1000002</AgentID></xml>"
    )
    assert await daemon.post(daemon.signer.message(image)) == (200, "")
    (reply,) = await wecom.wait_for_sent(1, user="wangwu")
    assert "文字" in str(reply)
    assert model.requests == []


def _hostile(
    signer: CallbackSigner,
) -> dict[str, tuple[SignedRequest | None, bytes | None, dict[str, str] | None]]:
    good = signer.text("mallory", "hi", 123)
    other_corp = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, "wwOtherCorp000000").text("mallory", "hi", 124)
    forged = SignedRequest({**good.query, "msg_signature": "0" * 40}, good.body)
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;">'
        b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;">]><xml><Encrypt>&lol3;</Encrypt></xml>'
    )
    ts, nonce = str(int(time.time())), "1"

    def signed_envelope(encrypt: str) -> tuple[None, bytes, dict[str, str]]:
        query = {"msg_signature": signer.crypto.sign(ts, nonce, encrypt), "timestamp": ts, "nonce": nonce}
        return None, signer.envelope(encrypt), query

    bad_padding = base64.b64encode(os.urandom(64)).decode()
    return {
        "forged signature": (forged, None, None),
        "missing query": (None, good.body, {}),
        "not xml": (None, b"hello, world", good.query),
        "entity bomb": (None, bomb, good.query),
        "multi-megabyte body": (None, b"<xml>" + b"A" * (3 * 1024 * 1024) + b"</xml>", good.query),
        "random bytes": (None, os.urandom(4096), good.query),
        "another corp's envelope": (other_corp, None, None),
        "bad base64": signed_envelope("!!!not-base64!!!"),
        "bad padding": signed_envelope(bad_padding),
        "empty body": (None, b"", good.query),
    }


@pytest.mark.parametrize(
    "case",
    [
        "forged signature",
        "missing query",
        "not xml",
        "entity bomb",
        "multi-megabyte body",
        "random bytes",
        "another corp's envelope",
        "bad base64",
        "bad padding",
        "empty body",
    ],
)
async def test_hostile_input_is_refused(
    case: str, daemon: DaemonRunner, model: FakeModel, wecom: FakeWeCom, caplog: pytest.LogCaptureFixture
) -> None:
    signed, body, query = _hostile(daemon.signer)[case]
    if signed is not None:
        body, query = signed.body, signed.query
    async with daemon.http.post(f"{daemon.url}/ai/callback", params=query, data=body) as resp:
        text = await resp.text()
        assert 400 <= resp.status < 500, (resp.status, text)
    assert "Traceback" not in text and 'File "' not in text
    assert any(r.levelname == "WARNING" and "refused" in r.getMessage() for r in caplog.records)
    # Nothing reached the pipeline: a following good message is the first and only one answered.
    await daemon.ask("alice", "ping", 555)
    await wecom.wait_for_sent(1, user="alice")
    assert len(model.requests) == 1
    assert wecom.messages_to("mallory") == []
