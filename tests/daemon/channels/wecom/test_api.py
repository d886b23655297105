"""WeComClient against FakeWeCom over real loopback HTTP: tokens, retries, typed errors, media, secrecy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from chatgpt_wecom.daemon.channels.wecom.api import (
    ERR_NOT_WECOM,
    ERR_TRANSPORT,
    RetryPolicy,
    WeComAPIError,
    WeComClient,
    WeComConfigError,
    WeComRateLimitedError,
    WeComRejectedError,
    WeComUnavailableError,
)
from tests.fakes.wecom import FOREVER, GET_MEDIA, GETTOKEN, SEND, UPLOAD, FakeWeCom

FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, timeout=5.0)


class FakeClock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def wecom() -> AsyncIterator[FakeWeCom]:
    async with FakeWeCom() as fake:
        yield fake


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def make_client(session: aiohttp.ClientSession, wecom: FakeWeCom, **overrides: Any) -> WeComClient:
    options: dict[str, Any] = {
        "api_base": wecom.base_url,
        "corp_id": wecom.corp_id,
        "agent_id": wecom.agent_id,
        "secret": wecom.secret,
        "retry": FAST,
    }
    return WeComClient(session, **(options | overrides))


@pytest.fixture
def client(session: aiohttp.ClientSession, wecom: FakeWeCom) -> WeComClient:
    return make_client(session, wecom)


# --- access_token ---------------------------------------------------------------------------------
async def test_token_is_cached_across_calls(client: WeComClient, wecom: FakeWeCom) -> None:
    assert not client.token_state().has_token
    await client.send_message("alice", "one", markdown=False)
    await client.send_message("alice", "two", markdown=False)
    assert wecom.token_fetches == 1
    tokens = {r.query["access_token"] for r in wecom.requests_to(SEND)}
    assert len(tokens) == 1
    assert wecom.texts_to("alice") == ["one", "two"]


async def test_fifty_concurrent_sends_fetch_one_token(client: WeComClient, wecom: FakeWeCom) -> None:
    # 50 members: WeCom takes at most 30 a minute for one member (the fake drops the rest, as WeCom does)
    await asyncio.gather(*(client.send_message(f"u{i}", f"m{i}", markdown=False) for i in range(50)))
    assert wecom.token_fetches == 1
    assert [wecom.texts_to(f"u{i}") for i in range(50)] == [[f"m{i}"] for i in range(50)]


async def test_token_refreshed_300s_before_expiry(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    clock = FakeClock()
    client = make_client(session, wecom, clock=clock)
    await client.send_message("alice", "a", markdown=False)
    state = client.token_state()
    assert state.has_token and state.expires_in == pytest.approx(7200)
    clock.advance(7200 - 300 - 1)
    await client.send_message("alice", "b", markdown=False)
    assert wecom.token_fetches == 1
    clock.advance(2)
    await client.send_message("alice", "c", markdown=False)
    assert wecom.token_fetches == 2


async def test_short_lived_token_refreshed_at_half_life(session: aiohttp.ClientSession) -> None:
    clock = FakeClock()
    async with FakeWeCom(token_ttl=400) as wecom:
        client = make_client(session, wecom, clock=clock)
        await client.token()
        clock.advance(199)
        await client.token()
        assert wecom.token_fetches == 1
        clock.advance(2)
        await client.token()
        assert wecom.token_fetches == 2


async def test_expired_token_mid_way_is_refetched_once(client: WeComClient, wecom: FakeWeCom) -> None:
    await client.send_message("alice", "before", markdown=False)
    wecom.expire_tokens()
    await client.send_message("alice", "after", markdown=False)
    assert wecom.token_fetches == 2
    assert [r.errcode for r in wecom.requests_to(SEND)] == [0, 42001, 0]
    assert wecom.texts_to("alice") == ["before", "after"]


async def test_expired_token_under_concurrency_is_refetched_once(client: WeComClient, wecom: FakeWeCom) -> None:
    await client.token()
    wecom.expire_tokens()
    await asyncio.gather(*(client.send_message("bob", f"m{i}", markdown=True) for i in range(20)))
    assert wecom.token_fetches == 2
    assert len(wecom.texts_to("bob")) == 20


async def test_invalid_token_twice_in_a_row_gives_up(client: WeComClient, wecom: FakeWeCom) -> None:
    wecom.fail(SEND, errcode=40014, times=2)
    with pytest.raises(WeComUnavailableError) as info:
        await client.send_message("alice", "x", markdown=False)
    assert info.value.errcode == 40014
    assert len(wecom.requests_to(SEND)) == 2
    assert wecom.token_fetches == 2
    await client.send_message("alice", "y", markdown=False)  # and the client is not stuck
    assert wecom.texts_to("alice") == ["y"]


# --- transient failures ---------------------------------------------------------------------------
async def test_5xx_twice_then_ok(client: WeComClient, wecom: FakeWeCom) -> None:
    wecom.fail(SEND, status=502, times=2)
    msgid = await client.send_message("alice", "hi", markdown=False)
    assert msgid
    assert [r.status for r in wecom.requests_to(SEND)] == [502, 502, 200]
    assert wecom.texts_to("alice") == ["hi"]


async def test_5xx_forever_gives_up_after_exactly_attempts(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    client = make_client(session, wecom, retry=RetryPolicy(attempts=4, base_delay=0.01, max_delay=0.02))
    wecom.fail(SEND, status=503, times=FOREVER)
    with pytest.raises(WeComUnavailableError) as info:
        await client.send_message("alice", "hi", markdown=False)
    assert info.value.errcode == ERR_TRANSPORT
    assert "HTTP 503" in str(info.value)
    assert len(wecom.requests_to(SEND)) == 4


@pytest.mark.parametrize("errcode", [-1])
async def test_busy_errcodes_are_retried(client: WeComClient, wecom: FakeWeCom, errcode: int) -> None:
    wecom.fail(SEND, errcode=errcode, times=2)
    await client.send_message("alice", "hi", markdown=False)
    assert len(wecom.requests_to(SEND)) == 3
    wecom.fail(SEND, errcode=errcode, times=FOREVER)
    with pytest.raises(WeComUnavailableError) as info:
        await client.send_message("alice", "again", markdown=False)
    assert info.value.errcode == errcode


async def test_non_json_200_is_transient(client: WeComClient, wecom: FakeWeCom) -> None:
    wecom.fail(SEND, status=200)
    await client.send_message("alice", "hi", markdown=False)
    assert len(wecom.requests_to(SEND)) == 2
    assert wecom.texts_to("alice") == ["hi"]


async def test_timeout_is_transient_and_bounded(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    client = make_client(session, wecom, retry=RetryPolicy(attempts=2, base_delay=0.01, timeout=0.2))
    await client.token()
    wecom.set_delay(SEND, 5.0)
    with pytest.raises(WeComUnavailableError) as info:
        await client.send_message("alice", "slow", markdown=False)
    assert info.value.errcode == ERR_TRANSPORT
    assert "timed out" in str(info.value)
    assert len(wecom.requests_to(SEND)) == 2
    wecom.set_delay(SEND, 0)
    await client.send_message("alice", "fast", markdown=False)
    assert wecom.texts_to("alice") == ["fast"]  # the timed-out requests were never processed


async def test_connection_refused_is_unavailable(session: aiohttp.ClientSession) -> None:
    wecom = FakeWeCom()
    await wecom.start()
    base = wecom.base_url
    await wecom.close()
    client = WeComClient(session, api_base=base, corp_id="c", agent_id=1, secret="s3cret-value", retry=FAST)
    with pytest.raises(WeComUnavailableError) as info:
        await client.send_message("alice", "hi", markdown=False)
    assert info.value.errcode == ERR_TRANSPORT
    assert "s3cret-value" not in str(info.value)
    assert client.token_state().last_error_code == ERR_TRANSPORT


# --- configuration errors -------------------------------------------------------------------------
async def test_wrong_secret_is_a_config_error_with_cooldown(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    clock = FakeClock()
    seen: list[WeComConfigError] = []
    client = make_client(session, wecom, secret="wrong-secret", clock=clock, on_config_error=seen.append)
    with pytest.raises(WeComConfigError) as info:
        await client.send_message("alice", "hi", markdown=False)
    assert info.value.errcode == 40001
    assert "agent_secret" in info.value.hint
    assert "from ip: 127.0.0.1" in info.value.errmsg
    assert seen == [info.value]
    assert len(wecom.requests) == 1

    clock.advance(FAST.config_error_cooldown - 1)
    with pytest.raises(WeComConfigError) as again:
        await client.send_message("alice", "hi", markdown=False)
    assert again.value.errcode == 40001 and again.value.hint == info.value.hint
    assert len(wecom.requests) == 1, "no request during the cooldown"
    assert len(seen) == 1
    state = client.token_state()
    assert not state.has_token and state.last_error_code == 40001

    clock.advance(2)
    with pytest.raises(WeComConfigError):
        await client.token()
    assert wecom.token_fetches == 2


async def test_clear_config_error_allows_an_immediate_retry(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    client = make_client(session, wecom)
    wecom.fail(GETTOKEN, errcode=40091)
    with pytest.raises(WeComConfigError):
        await client.token()
    client.clear_config_error()
    await client.token()
    assert wecom.token_fetches == 2
    assert client.token_state().last_error is None


async def test_untrusted_ip_hint_names_the_ip(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    client = make_client(session, wecom)
    wecom.fail(GETTOKEN, errcode=60020)
    with pytest.raises(WeComConfigError) as info:
        await client.token()
    assert "(127.0.0.1)" in info.value.hint
    assert "可信IP" in info.value.hint


async def test_wrong_corp_id_hint(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    client = make_client(session, wecom, corp_id="ww-not-mine")
    with pytest.raises(WeComConfigError) as info:
        await client.token()
    assert info.value.errcode == 40013
    assert "corp_id" in info.value.hint


@pytest.mark.parametrize("errcode", [48002, 301002, 60020])
async def test_config_error_from_send_is_not_retried(
    session: aiohttp.ClientSession, wecom: FakeWeCom, errcode: int
) -> None:
    seen: list[WeComConfigError] = []
    client = make_client(session, wecom, on_config_error=seen.append)
    wecom.fail(SEND, errcode=errcode)
    with pytest.raises(WeComConfigError) as info:
        await client.send_message("alice", "hi", markdown=False)
    assert info.value.errcode == errcode and info.value.hint
    assert len(wecom.requests_to(SEND)) == 1
    assert [e.errcode for e in seen] == [errcode]


async def test_wrong_agent_id_is_a_config_error(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    client = make_client(session, wecom, agent_id=999)
    with pytest.raises(WeComConfigError) as info:
        await client.send_message("alice", "hi", markdown=False)
    assert info.value.errcode == 301002
    assert "agent_id" in info.value.hint


async def test_failing_callback_does_not_hide_the_error(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    def broken(exc: WeComConfigError) -> None:
        raise RuntimeError("callback bug")

    client = make_client(session, wecom, secret="nope", on_config_error=broken)
    with pytest.raises(WeComConfigError):
        await client.token()


# --- rejected messages ----------------------------------------------------------------------------
async def test_oversized_content_is_rejected(client: WeComClient, wecom: FakeWeCom) -> None:
    with pytest.raises(WeComRejectedError) as info:
        await client.send_message("alice", "字" * 683, markdown=True)  # 2049 bytes
    assert info.value.errcode == 45002
    assert len(wecom.requests_to(SEND)) == 1
    await client.send_message("alice", "字" * 682 + "ab", markdown=True)  # exactly 2048 bytes
    assert len(wecom.sent) == 1


async def test_unknown_recipients_and_unknown_errcodes_are_rejected(session: aiohttp.ClientSession) -> None:
    async with FakeWeCom(users=["alice"]) as wecom:
        client = make_client(session, wecom)
        with pytest.raises(WeComRejectedError) as info:
            await client.send_message("mallory", "hi", markdown=False)
        assert info.value.errcode == 81013
        await client.send_message("alice|mallory", "hi", markdown=False)  # partly valid still sends
        assert wecom.texts_to("alice") == ["hi"]
        wecom.fail(SEND, errcode=12345, errmsg="something new")
        with pytest.raises(WeComRejectedError) as unknown:
            await client.send_message("alice", "hi", markdown=False)
        assert unknown.value.errcode == 12345
        assert len(wecom.requests_to(SEND)) == 3


async def test_empty_content_is_rejected(client: WeComClient) -> None:
    with pytest.raises(WeComRejectedError) as info:
        await client.send_message("alice", "", markdown=False)
    assert info.value.errcode == 44004


# --- request shapes -------------------------------------------------------------------------------
async def test_text_and_markdown_bodies(client: WeComClient, wecom: FakeWeCom) -> None:
    msgid = await client.send_message("alice", "plain", markdown=False)
    await client.send_message("alice", "**bold**", markdown=True)
    assert msgid == "fake-msgid-1"
    text, markdown = wecom.sent
    assert text == {
        "touser": "alice",
        "msgtype": "text",
        "agentid": wecom.agent_id,
        "text": {"content": "plain"},
        "safe": 0,
        "enable_duplicate_check": 1,
        "duplicate_check_interval": 1800,
    }
    assert markdown["msgtype"] == "markdown" and markdown["markdown"] == {"content": "**bold**"}
    assert "text" not in markdown
    request = wecom.requests_to(SEND)[0]
    assert set(request.query) == {"access_token"}
    assert request.headers["Content-Type"].startswith("application/json")


async def test_duplicate_check_fields(client: WeComClient, wecom: FakeWeCom) -> None:
    await client.send_message("alice", "once", markdown=True, duplicate_check_interval=1799)
    body = wecom.sent[0]
    assert body["enable_duplicate_check"] == 1
    assert body["duplicate_check_interval"] == 1799
    with pytest.raises(ValueError, match="duplicate_check_interval"):
        await client.send_message("alice", "x", markdown=True, duplicate_check_interval=4 * 3600 + 1)


async def test_every_try_of_a_send_is_the_same_bytes(client: WeComClient, wecom: FakeWeCom) -> None:
    """A reply lost after WeCom accepted the message: the inner retry is byte-for-byte the first try, so WeCom's
    duplicate check drops it and the user reads the message once."""
    wecom.lose_replies(SEND, times=2, how="502")
    await client.send_message("alice", "只一次", markdown=True)
    bodies = [r.body for r in wecom.requests_to(SEND)]
    assert len(bodies) == 3 and len(set(bodies)) == 1
    assert wecom.texts_to("alice") == ["只一次"]
    assert wecom.duplicates_dropped == 2


@pytest.mark.parametrize("errcode", [45009, 45033])
async def test_rate_limit_errcodes_are_not_hammered(client: WeComClient, wecom: FakeWeCom, errcode: int) -> None:
    wecom.fail(SEND, errcode=errcode, times=FOREVER)
    with pytest.raises(WeComRateLimitedError) as caught:  # a WeComUnavailableError: "try again later"
        await client.send_message("alice", "hi", markdown=False)
    assert caught.value.errcode == errcode
    assert len(wecom.requests_to(SEND)) == 1  # the caller backs off; the client does not retry into it


async def test_upload_send_and_download_media(client: WeComClient, wecom: FakeWeCom) -> None:
    data = bytes(range(256)) * 4 + b"\r\n--tricky\r\n"
    media_id = await client.upload_media("image", data, "chart.png", "image/png")
    request = wecom.requests_to(UPLOAD)[0]
    assert request.query["type"] == "image"
    stored = wecom.media[media_id]
    assert (stored.data, stored.filename, stored.content_type, stored.kind) == (
        data,
        "chart.png",
        "image/png",
        "image",
    )
    await client.send_image("alice", media_id)
    assert wecom.sent[0]["image"] == {"media_id": media_id}
    assert await client.download_media(media_id) == (data, "image/png")


async def test_download_user_media_and_errors(client: WeComClient, wecom: FakeWeCom) -> None:
    wecom.add_media("MEDIA1", b"\xff\xd8jpeg", "image/jpeg")
    wecom.expire_tokens()
    assert await client.download_media("MEDIA1") == (b"\xff\xd8jpeg", "image/jpeg")
    with pytest.raises(WeComRejectedError) as info:
        await client.download_media("missing")
    assert info.value.errcode == 40007
    wecom.fail(GET_MEDIA, status=500)
    assert await client.download_media("MEDIA1") == (b"\xff\xd8jpeg", "image/jpeg")


async def test_upload_validation(client: WeComClient) -> None:
    with pytest.raises(ValueError, match="media kind"):
        await client.upload_media("gif", b"xx", "a.gif", "image/gif")
    with pytest.raises(WeComRejectedError) as info:
        await client.upload_media("file", b"", "empty.txt", "text/plain")
    assert info.value.errcode == 44001


# --- secrecy --------------------------------------------------------------------------------------
async def test_errors_and_logs_never_contain_token_or_secret(
    client: WeComClient, wecom: FakeWeCom, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    token = await client.token()
    errors: list[WeComAPIError] = []
    wecom.fail(SEND, errcode=40003, errmsg=f"invalid userid; url /send?access_token={token}&x=1")
    wecom.fail(UPLOAD, errcode=40004, errmsg=f"echo {token} and {wecom.secret}")
    wecom.fail(SEND, errcode=-1, times=FAST.attempts, errmsg=f"busy access_token={token}")
    for call in (
        client.send_message("alice", "a", markdown=False),
        client.upload_media("file", b"abcdef", "a.txt", "text/plain"),
        client.send_message("alice", "b", markdown=False),
    ):
        with pytest.raises(WeComAPIError) as info:
            await call
        errors.append(info.value)
    wecom.fail(GETTOKEN, errcode=40001, errmsg=f"invalid credential, corpsecret={wecom.secret}, from ip: 10.0.0.1")
    client.clear_config_error()
    wecom.expire_tokens()
    with pytest.raises(WeComConfigError) as config:
        await client.send_message("alice", "c", markdown=False)
    errors.append(config.value)
    texts = [str(e) for e in errors] + [e.errmsg for e in errors] + [config.value.hint, caplog.text]
    texts.append(str(client.token_state()))
    for text in texts:
        assert token not in text
        assert wecom.secret not in text
    assert "access_token=***" in errors[0].errmsg
    assert "corpsecret=***" in config.value.errmsg


# --- URLs and policy ------------------------------------------------------------------------------
async def test_api_base_with_a_path_prefix(session: aiohttp.ClientSession) -> None:
    async with FakeWeCom(prefix="/wecom/") as wecom:
        assert wecom.base_url.endswith("/wecom")
        client = make_client(session, wecom, api_base=wecom.base_url + "/")
        assert client.url("message/send") == wecom.base_url + "/cgi-bin/message/send"
        await client.send_message("alice", "via proxy", markdown=False)
        assert wecom.texts_to("alice") == ["via proxy"]
        assert [r.path for r in wecom.requests] == [GETTOKEN, SEND]


async def test_api_base_missing_the_prefix_is_a_config_error(session: aiohttp.ClientSession) -> None:
    async with FakeWeCom(prefix="/wecom") as wecom:
        client = make_client(session, wecom, api_base=wecom.base_url.removesuffix("/wecom"))
        with pytest.raises(WeComConfigError) as info:
            await client.token()
        assert info.value.errcode == ERR_NOT_WECOM
        assert "HTTP 404" in str(info.value) and "wecom_api_base" in info.value.hint
        assert wecom.requests == []  # the fake's app never saw it


def test_url_building() -> None:
    def url(base: str) -> str:
        client = WeComClient(None, api_base=base, corp_id="c", agent_id=1, secret="s")  # type: ignore[arg-type]
        return client.url("gettoken")

    assert url("https://qyapi.weixin.qq.com") == "https://qyapi.weixin.qq.com/cgi-bin/gettoken"
    assert url("http://proxy/wecom/") == "http://proxy/wecom/cgi-bin/gettoken"


def test_retry_policy_backoff_is_capped_with_jitter() -> None:
    policy = RetryPolicy(base_delay=0.5, max_delay=8.0)
    for retry in range(1, 12):
        ceiling = min(8.0, 0.5 * 2 ** (retry - 1))
        assert ceiling / 2 <= policy.delay(retry) <= ceiling
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)


# --- the fake itself ------------------------------------------------------------------------------
async def test_fake_wait_for_sent_and_timeout_message(client: WeComClient, wecom: FakeWeCom) -> None:
    task = asyncio.create_task(client.send_message("carol", "late", markdown=False))
    assert [m["text"]["content"] for m in await wecom.wait_for_sent(1, user="carol")] == ["late"]
    await task
    with pytest.raises(AssertionError, match=r"(?s)no 2 sent message\(s\) to 'carol'.*1 sent"):
        await wecom.wait_for_sent(2, user="carol", timeout=0.05)


async def test_fake_rejects_unknown_tokens_and_paths(session: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    async with session.post(f"{wecom.base_url}{SEND}?access_token=forged", json={}) as resp:
        assert (await resp.json())["errcode"] == 40014
    async with session.post(f"{wecom.base_url}{SEND}", json={}) as resp:
        assert (await resp.json())["errcode"] == 41001
    async with session.get(f"{wecom.base_url}/cgi-bin/nope") as resp:
        assert resp.status == 404
    assert [r.errcode for r in wecom.requests] == [40014, 41001, None]


async def test_fake_fail_when_until_cleared(client: WeComClient, wecom: FakeWeCom) -> None:
    wecom.fail_when(SEND, lambda rec: "part 2" in str(rec.json), status=503)
    await client.send_message("alice", "part 1", markdown=False)
    with pytest.raises(WeComUnavailableError):
        await client.send_message("alice", "part 2", markdown=False)
    assert [r.status for r in wecom.requests_to(SEND)] == [200, 503, 503, 503]
    wecom.clear_failures()
    await client.send_message("alice", "part 2", markdown=False)
    assert wecom.texts_to("alice") == ["part 1", "part 2"]


async def test_fake_wait_for_sees_state_outside_the_fake(wecom: FakeWeCom) -> None:
    flag: list[bool] = []
    asyncio.get_running_loop().call_later(0.1, flag.append, True)
    await wecom.wait_for(lambda: bool(flag), timeout=5.0)
    with pytest.raises(AssertionError, match="no flag after"):
        await wecom.wait_for(lambda: len(flag) > 1, timeout=0.1, what="flag")
