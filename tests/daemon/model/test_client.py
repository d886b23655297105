"""ModelClient against FakeModel over real loopback HTTP: routing, retries, error mapping, streaming, proxying.

The media calls (images, speech, vision) are in test_media.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal

import aiohttp
import openai
import pytest
from aiohttp import web

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.model.client import (
    AnswerStream,
    Completion,
    ContextTooLongError,
    ModelClient,
    ModelError,
    ModelTimeoutError,
    ModelUnavailableError,
    openai_base_url,
)
from tests.fakes.model import FakeModel, ModelRequest, context_length_body

SECRET_KEY = "sk-test-very-secret-0123456789"
QUESTION = [{"role": "user", "content": "what is the secret plan?"}]

# Environment that would change the Settings or the SDK's behaviour behind the test's back.
_ENV = [
    *(name.upper() for name in Settings.model_fields),
    "APIKEY",
    *(
        f"{prefix}{suffix}"
        for prefix in ("OPENAI_", "AZURE_OPENAI_")
        for suffix in (
            "API_KEY",
            "BASE_URL",
            "ENDPOINT",
            "AD_TOKEN",
            "ORG_ID",
            "PROJECT_ID",
            "CUSTOM_HEADERS",
        )
    ),
    "OPENAI_API_VERSION",
    "OPENAI_ADMIN_KEY",
    *(p for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY") for p in (name, name.lower())),
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _ENV:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.fixture
async def fake() -> AsyncIterator[FakeModel]:
    async with FakeModel() as server:
        yield server


def make_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "corp_id": "ww0123456789",
        "agent_id": 1,
        "agent_secret": "s",
        "receive_msg_token": "t",
        "receive_msg_key": "a" * 43,
        "api_key": SECRET_KEY,
        "model": "gpt-test",
        "model_timeout": 5.0,
        "model_max_retries": 0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
async def client_for() -> AsyncIterator[Callable[..., ModelClient]]:
    """Build ModelClients from settings overrides; all are closed after the test."""
    made: list[ModelClient] = []

    def build(**overrides: Any) -> ModelClient:
        made.append(ModelClient.from_settings(make_settings(**overrides)))
        return made[-1]

    yield build
    for client in made:
        await client.close()


# --- base_url rule ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("", None),
        ("   ", None),
        ("https://api.example.com", "https://api.example.com/v1"),
        ("https://api.example.com/", "https://api.example.com/v1"),
        ("http://10.0.0.5:8000", "http://10.0.0.5:8000/v1"),
        (
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
            "https://dashscope.aliyuncs.com/compatible-mode/v1",
        ),
        ("https://host/compatible-mode/v1/", "https://host/compatible-mode/v1"),
        ("https://host/api", "https://host/api"),
    ],
)
def test_openai_base_url(given: str, expected: str | None) -> None:
    assert openai_base_url(given) == expected


# --- happy path ------------------------------------------------------------------------------------


async def test_completion_text_model_and_usage(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url)
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "hello"},
        {"role": "user", "content": "how are you?"},
    ]
    result = await client.complete(messages, max_tokens=123)

    assert result == Completion(
        text="echo: how are you?",
        model="gpt-test",
        prompt_tokens=len("be brief" + "hi" + "hello" + "how are you?"),
        completion_tokens=len("echo: how are you?"),
    )
    assert result.first_token is None  # only a streamed answer has a first token before the rest
    [request] = fake.requests
    assert request.json["model"] == "gpt-test"
    assert request.json["messages"] == messages
    assert request.json["max_tokens"] == 123
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"
    assert client.model == "gpt-test"
    assert client.endpoint == fake.base_url.removeprefix("http://")


async def test_max_tokens_omitted_and_missing_usage(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.include_usage = False
    fake.set_reply("plain answer")
    result = await client_for(base_url=fake.base_url).complete(QUESTION)
    assert (result.text, result.prompt_tokens, result.completion_tokens) == ("plain answer", 0, 0)
    assert "max_tokens" not in fake.requests[0].json


async def test_async_reply_function(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    async def reply(request: ModelRequest) -> str:
        return f"{len(request.messages)} messages"

    fake.set_reply(reply)
    result = await client_for(base_url=fake.base_url).complete(QUESTION)
    assert result.text == "1 messages"


async def test_unknown_role_is_refused_before_sending(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    with pytest.raises(ValueError, match="role"):
        await client_for(base_url=fake.base_url).complete([{"role": "tool", "content": "x"}])
    assert fake.requests == []


async def test_bare_host_gets_v1(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    await client_for(base_url=fake.base_url + "/").complete(QUESTION)
    assert fake.requests[0].path == "/v1/chat/completions"


async def test_explicit_path_is_used_as_given(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    await client_for(base_url=fake.base_url + "/compatible-mode/v1").complete(QUESTION)
    assert fake.requests[0].path == "/compatible-mode/v1/chat/completions"


async def test_empty_choices_is_unavailable() -> None:
    async def no_choices(_request: web.Request) -> web.Response:
        return web.json_response({"id": "x", "object": "chat.completion", "created": 0, "model": "m", "choices": []})

    app = web.Application()
    app.router.add_post("/v1/chat/completions", no_choices)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    sdk = openai.AsyncOpenAI(api_key="k", base_url=f"http://127.0.0.1:{runner.addresses[0][1]}/v1", max_retries=0)
    client = ModelClient(sdk, "m", endpoint="local")
    try:
        with pytest.raises(ModelUnavailableError, match="local returned no choices"):
            await client.complete(QUESTION)
    finally:
        await client.close()
        await runner.cleanup()


# --- Azure -----------------------------------------------------------------------------------------


async def test_azure_routing_with_base_url(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(
        azure_on=True,
        api_key="",
        base_url=fake.base_url,
        azure_deployment_name="gpt4o-prod",
        azure_api_version="2024-06-01",
        azure_openai_token="azure-secret-token",
    )
    result = await client.complete(QUESTION)

    assert result.text == "echo: what is the secret plan?"
    [request] = fake.requests
    assert request.path == "/openai/deployments/gpt4o-prod/chat/completions"
    assert request.query == {"api-version": "2024-06-01"}
    assert request.headers["api-key"] == "azure-secret-token"
    assert "authorization" not in request.headers
    assert client.model == "gpt4o-prod"
    assert client.endpoint == fake.base_url.removeprefix("http://")


def test_azure_endpoint_from_resource_name(client_for: Callable[..., ModelClient]) -> None:
    client = client_for(
        azure_on=True,
        azure_resource_name="contoso",
        azure_deployment_name="dep",
        azure_openai_token="tok",
    )
    inner: openai.AsyncOpenAI = client._client
    assert str(inner.base_url) == "https://contoso.openai.azure.com/openai/deployments/dep/"
    assert client.endpoint == "contoso.openai.azure.com"


def test_openai_default_endpoint(client_for: Callable[..., ModelClient]) -> None:
    assert client_for().endpoint == "api.openai.com"


# --- retries and failures --------------------------------------------------------------------------


async def test_500_twice_then_ok_with_two_retries(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail(500, times=2)
    result = await client_for(base_url=fake.base_url, model_max_retries=2).complete(QUESTION)
    assert result.text.startswith("echo:")
    assert len(fake.requests) == 3
    assert [r.headers.get("x-stainless-retry-count") for r in fake.requests] == ["0", "1", "2"]


async def test_sdk_backoff_without_retry_after(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    """Without a Retry-After header the SDK waits 0.5 s × 2^n, less up to 25 % jitter."""
    fake.retry_after_ms = None
    fake.fail(503, times=1)
    await client_for(base_url=fake.base_url, model_max_retries=1).complete(QUESTION)
    first, second = fake.requests
    assert 0.35 <= second.at - first.at < 2.0


async def test_retries_are_bounded(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail(500, times=5)
    with pytest.raises(ModelUnavailableError, match="HTTP 500"):
        await client_for(base_url=fake.base_url, model_max_retries=2).complete(QUESTION)
    assert len(fake.requests) == 3


async def test_down_is_unavailable_then_up_recovers(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, model_max_retries=1)
    fake.down()
    with pytest.raises(ModelUnavailableError, match="HTTP 503") as caught:
        await client.complete(QUESTION)
    assert not isinstance(caught.value, ContextTooLongError)
    fake.up()
    assert (await client.complete(QUESTION)).text.startswith("echo:")


async def test_unreachable_is_unavailable(client_for: Callable[..., ModelClient]) -> None:
    server = FakeModel()
    await server.start()
    url = server.base_url
    await server.close()  # nothing listens on that port any more
    with pytest.raises(ModelUnavailableError, match="unreachable"):
        await client_for(base_url=url).complete(QUESTION)


async def test_401_mentions_api_key_but_never_the_key_or_prompt(
    fake: FakeModel, client_for: Callable[..., ModelClient], caplog: pytest.LogCaptureFixture
) -> None:
    fake.expected_key = "the-right-key"
    caplog.set_level("DEBUG")
    with pytest.raises(ModelUnavailableError) as caught:
        await client_for(base_url=fake.base_url, model_max_retries=2).complete(QUESTION)
    text = str(caught.value)
    assert "api_key" in text
    assert "401" in text
    assert SECRET_KEY not in text
    assert "secret plan" not in text
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__
    assert len(fake.requests) == 1  # 401 is not retried
    assert SECRET_KEY not in caplog.text


async def test_403_mentions_api_key(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail(403)
    with pytest.raises(ModelUnavailableError, match="check api_key"):
        await client_for(base_url=fake.base_url).complete(QUESTION)


async def test_404_mentions_model_and_deployment(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail(404, body={"error": {"message": "The model `nope` does not exist", "code": "model_not_found"}})
    with pytest.raises(ModelUnavailableError, match="check model / azure_deployment_name") as caught:
        await client_for(base_url=fake.base_url).complete(QUESTION)
    assert "model_not_found" in str(caught.value)


async def test_429_is_retried_then_waited_out(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    # The SDK's own retries first (3 tries); then the rate limit holds every call for its Retry-After and the call
    # goes on — it ends in an answer, not an error (giving up after the pace's budget: tests/daemon/model/test_pace).
    fake.fail(429, times=3, body={"error": {"message": "slow down", "code": "rate_limit_exceeded"}})
    client = client_for(base_url=fake.base_url, model_max_retries=2)
    answer = await client.complete(QUESTION)
    assert answer.text.startswith("echo: ") and len(fake.requests) == 4


async def test_other_400_is_unavailable(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail(400, body={"error": {"message": "echo: what is the secret plan? is bad", "code": "bad"}})
    with pytest.raises(ModelUnavailableError) as caught:
        await client_for(base_url=fake.base_url).complete(QUESTION)
    assert not isinstance(caught.value, ContextTooLongError)
    assert "secret plan" not in str(caught.value)


@pytest.mark.parametrize(
    "body",
    [
        context_length_body(),
        {"error": {"message": "Input has too many tokens for this model", "code": None}},
        {"error": {"message": "Please reduce the length of the messages or completion.", "type": "x"}},
        {"message": "This model's maximum context length is 8192 tokens"},
    ],
)
async def test_context_length_400_is_context_too_long(
    fake: FakeModel, client_for: Callable[..., ModelClient], body: dict[str, Any]
) -> None:
    fake.fail_when(lambda r: r.total_chars > 10, 400, body)
    client = client_for(base_url=fake.base_url, model_max_retries=2)
    with pytest.raises(ContextTooLongError) as caught:
        await client.complete(QUESTION)
    assert isinstance(caught.value, ModelError)
    assert "secret plan" not in str(caught.value)
    assert len(fake.requests) == 1  # a 400 is not retried
    assert (await client.complete([{"role": "user", "content": "short"}])).text == "echo: short"


async def test_timeout_is_unavailable(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.set_delay(6.0)
    client = client_for(base_url=fake.base_url, model_timeout=0.3, model_max_retries=0)
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="timed out"):
        await client.complete(QUESTION)
    assert time.monotonic() - started < 3.0


async def test_slow_answer_does_not_block_others(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url)

    def reply(request: ModelRequest) -> str:
        return request.last_user_text

    fake.set_reply(reply)
    fake.set_delay(0.3)
    started = time.monotonic()
    results = await asyncio.gather(*(client.complete([{"role": "user", "content": str(i)}]) for i in range(5)))
    assert sorted(r.text for r in results) == ["0", "1", "2", "3", "4"]
    assert time.monotonic() - started < 1.5


# --- streaming -------------------------------------------------------------------------------------


async def _read(stream: AnswerStream, deltas: list[str] | None = None) -> list[str]:
    """Iterate `stream` inside `async with`; the deltas (also kept in `deltas` when the stream fails)."""
    got = [] if deltas is None else deltas
    async with stream as answer:
        async for delta in answer:
            got.append(delta)
    return got


async def test_stream_yields_deltas_in_order_then_completion(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.set_reply("abcdefghij" * 5)
    fake.set_stream(chunk_chars=7)
    stream = client_for(base_url=fake.base_url).stream(QUESTION, max_tokens=99)

    deltas = await _read(stream)

    assert deltas == ["abcdefg", "hijabcd", "efghija", "bcdefgh", "ijabcde", "fghijab", "cdefghi", "j"]
    assert stream.completion == Completion(
        text="abcdefghij" * 5,
        model="gpt-test",
        prompt_tokens=len(QUESTION[0]["content"]),
        completion_tokens=50,
    )
    assert stream.text == "abcdefghij" * 5
    first_token = stream.completion.first_token  # the time to first token, for /metrics
    assert first_token is not None and 0 < first_token < 10
    [request] = fake.requests
    assert request.json["stream"] is True
    assert request.json["stream_options"] == {"include_usage": True}
    assert request.json["max_tokens"] == 99
    assert request.json["messages"] == QUESTION


async def test_stream_deltas_arrive_as_written(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.set_reply("0123456789")
    fake.set_stream(chunk_chars=2, chunk_delay=0.1)
    arrivals: list[tuple[str, float]] = []
    async with client_for(base_url=fake.base_url).stream(QUESTION) as answer:
        async for delta in answer:
            arrivals.append((delta, time.monotonic()))
    assert [delta for delta, _ in arrivals] == ["01", "23", "45", "67", "89"]
    assert arrivals[-1][1] - arrivals[0][1] >= 0.3  # the first piece came before the rest were written
    assert answer.completion.text == "0123456789"


async def test_stream_without_usage_reports_zero(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.include_usage = False
    fake.set_reply("short")
    stream = client_for(base_url=fake.base_url).stream(QUESTION)
    assert await _read(stream) == ["short"]
    assert (stream.completion.prompt_tokens, stream.completion.completion_tokens) == (0, 0)
    assert "max_tokens" not in fake.requests[0].json


async def test_stream_can_be_iterated_without_async_with(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.set_reply("abcdef")
    fake.set_stream(chunk_chars=4)
    stream = client_for(base_url=fake.base_url).stream(QUESTION)
    assert [delta async for delta in stream] == ["abcd", "ef"]
    assert stream.completion.text == "abcdef"
    assert [delta async for delta in stream] == []  # finished: iterating again yields nothing


async def test_stream_broken_mid_answer_keeps_the_partial_text(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.set_reply("what is the secret plan? " * 4)
    fake.set_stream(chunk_chars=10, fail_after=3)
    stream = client_for(base_url=fake.base_url, model_max_retries=2).stream(QUESTION)
    deltas: list[str] = []

    with pytest.raises(ModelUnavailableError, match="broke off the answer") as caught:
        await _read(stream, deltas)

    assert deltas == ["what is th", "e secret p", "lan? what "]
    assert stream.text == "".join(deltas)
    assert "secret plan" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert len(fake.requests) == 1  # text had arrived: never retried
    with pytest.raises(RuntimeError, match="not finished"):
        _ = stream.completion


async def test_stream_ending_without_a_finish_reason_is_unavailable(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    """All the text arrived but not the end of the answer: the caller must not take it as complete."""
    fake.set_reply("abcdef")
    fake.set_stream(chunk_chars=3, fail_after=5)
    deltas: list[str] = []
    with pytest.raises(ModelUnavailableError, match="broke off the answer"):
        await _read(client_for(base_url=fake.base_url).stream(QUESTION), deltas)
    assert deltas == ["abc", "def"]


async def test_stream_read_timeout_mid_answer(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.set_reply("abcdef")
    fake.set_stream(chunk_chars=2, chunk_delay=3.0)
    deltas: list[str] = []
    started = time.monotonic()
    with pytest.raises(ModelUnavailableError, match="timed out"):
        await _read(client_for(base_url=fake.base_url, model_timeout=0.3).stream(QUESTION), deltas)
    assert deltas == ["ab"]
    assert time.monotonic() - started < 2.0


# --- first_token_timeout: each attempt must start in time ------------------------------------------------


@pytest.mark.parametrize("before", ["headers", "body"])
async def test_stream_that_never_starts_is_given_up_after_each_attempts_first_token_timeout(
    fake: FakeModel, client_for: Callable[..., ModelClient], before: Literal["headers", "body"]
) -> None:
    """Nothing at all, or a 200's headers and then nothing: every attempt waits first_token_timeout, not
    model_timeout, and the SDK retries it."""
    fake.stall(before)
    client = client_for(base_url=fake.base_url, model_timeout=30.0, first_token_timeout=0.3, model_max_retries=2)
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError, match=r"sent nothing for 0\.3 s \(first_token_timeout\)"):
        await _read(client.stream(QUESTION))
    waited = time.monotonic() - started
    assert len(fake.requests) == 3
    assert 3 * 0.3 <= waited < 10.0  # 3 × 0.3 s + the SDK's backoff (~1.5 s), where model_timeout was 3 × 30 s


async def test_a_stream_that_did_not_start_is_retried_and_the_retry_answers(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.stall("body")
    client = client_for(base_url=fake.base_url, model_timeout=30.0, first_token_timeout=0.3, model_max_retries=1)
    reading = asyncio.create_task(_read(client.stream(QUESTION)))
    await fake.wait_for_requests(1)
    fake.stall(None)  # the first attempt stays stalled; the retry is answered
    assert "".join(await reading) == "echo: what is the secret plan?"
    assert len(fake.requests) == 2


async def test_pauses_once_a_stream_has_started_are_bounded_by_model_timeout(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.set_reply("abcdef")
    fake.set_stream(chunk_chars=2, chunk_delay=0.4)  # pauses longer than first_token_timeout
    client = client_for(base_url=fake.base_url, model_timeout=5.0, first_token_timeout=0.2)
    assert await _read(client.stream(QUESTION)) == ["ab", "cd", "ef"]


async def test_an_answer_not_streamed_may_take_longer_than_first_token_timeout(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    """Its first byte is the whole answer: it gets model_timeout."""
    fake.set_delay(0.5)
    client = client_for(base_url=fake.base_url, model_timeout=5.0, first_token_timeout=0.2)
    assert (await client.complete(QUESTION)).text == "echo: what is the secret plan?"


async def test_first_token_timeout_is_never_longer_than_model_timeout(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.stall("body")
    client = client_for(base_url=fake.base_url, model_timeout=0.3, first_token_timeout=30.0)
    started = time.monotonic()
    with pytest.raises(ModelTimeoutError, match=r"0\.3 s"):
        await _read(client.stream(QUESTION))
    assert time.monotonic() - started < 5.0


async def test_stream_context_too_long_when_opening(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail_when(lambda r: r.total_chars > 10, 400, context_length_body())
    deltas: list[str] = []
    with pytest.raises(ContextTooLongError):
        await _read(client_for(base_url=fake.base_url, model_max_retries=2).stream(QUESTION), deltas)
    assert deltas == []
    assert len(fake.requests) == 1


async def test_stream_open_is_retried_by_the_sdk(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.fail(503, times=1)
    stream = client_for(base_url=fake.base_url, model_max_retries=1).stream(QUESTION)
    assert "".join(await _read(stream)) == "echo: what is the secret plan?"
    assert len(fake.requests) == 2


async def test_stream_down_is_unavailable_when_opening(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.down()
    stream = client_for(base_url=fake.base_url).stream(QUESTION)
    with pytest.raises(ModelUnavailableError, match="HTTP 503"):
        await _read(stream)
    assert [delta async for delta in stream] == []  # a failed stream stays closed


async def test_stream_options_refused_then_asked_without(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    """Azure before api-version 2024-10-21 rejects `stream_options`: ask again without it, and remember."""
    refusal = {"error": {"message": "Unrecognized request argument supplied: stream_options", "code": None}}
    fake.fail_when(lambda r: "stream_options" in r.json, 400, refusal)
    client = client_for(base_url=fake.base_url)

    first = client.stream(QUESTION)
    assert "".join(await _read(first)) == "echo: what is the secret plan?"
    assert (first.completion.prompt_tokens, first.completion.completion_tokens) == (0, 0)
    second = client.stream(QUESTION)
    await _read(second)

    assert ["stream_options" in r.json for r in fake.requests] == [True, False, False]


async def test_stream_stopped_early_releases_the_connection(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    fake.set_reply("x" * 100)
    fake.set_stream(chunk_chars=10, chunk_delay=0.05)
    client = client_for(base_url=fake.base_url)
    async with client.stream(QUESTION) as answer:
        async for delta in answer:
            assert delta == "x" * 10
            break
    assert answer.text == "x" * 10
    with pytest.raises(RuntimeError):
        _ = answer.completion
    assert (await client.complete(QUESTION)).text == "x" * 100  # the client still works


async def test_stream_bad_role_raises_before_sending(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    with pytest.raises(ValueError, match="role"):
        client_for(base_url=fake.base_url).stream([{"role": "tool", "content": "x"}])
    assert fake.requests == []


async def test_stream_on_azure(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(
        azure_on=True,
        api_key="",
        base_url=fake.base_url,
        azure_deployment_name="gpt4o-prod",
        azure_openai_token="azure-secret-token",
    )
    stream = client.stream(QUESTION)
    assert "".join(await _read(stream)) == "echo: what is the secret plan?"
    assert stream.completion.model == "gpt4o-prod"
    assert fake.requests[0].path == "/openai/deployments/gpt4o-prod/chat/completions"


# --- http_proxy ------------------------------------------------------------------------------------


class ForwardProxy:
    """A plain-HTTP forward proxy stand-in: takes absolute-form request URIs and relays them."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self._runner: web.ServerRunner | None = None
        self.url = ""

    async def __aenter__(self) -> ForwardProxy:
        self._session = aiohttp.ClientSession()
        self._runner = web.ServerRunner(web.Server(self._relay))
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _relay(self, request: web.BaseRequest) -> web.Response:
        target = request.raw_path  # absolute-form: "http://127.0.0.1:PORT/v1/chat/completions"
        self.seen.append(target)
        if not target.startswith("http://"):
            return web.Response(status=400, text="not a proxy request")
        skip = {"host", "proxy-connection", "connection", "content-length", "transfer-encoding"}
        headers = {k: v for k, v in request.headers.items() if k.lower() not in skip}
        async with self._session.request(
            request.method, target, headers=headers, data=await request.read()
        ) as upstream:
            body = await upstream.read()
            return web.Response(
                status=upstream.status, body=body, content_type=upstream.content_type or "application/json"
            )


async def test_http_proxy_is_used(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    async with ForwardProxy() as proxy:
        client = client_for(base_url=fake.base_url, http_proxy=proxy.url)
        result = await client.complete(QUESTION)
    assert result.text == "echo: what is the secret plan?"
    assert proxy.seen == [f"{fake.base_url}/v1/chat/completions"]
    assert len(fake.requests) == 1


class Socks5Proxy:
    """A minimal SOCKS5 stand-in (no auth, CONNECT only) that records the targets it connected to."""

    def __init__(self) -> None:
        self.targets: list[tuple[str, int]] = []
        self.url = ""

    async def __aenter__(self) -> Socks5Proxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.url = f"socks5://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._server.close()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            _version, count = await reader.readexactly(2)
            await reader.readexactly(count)
            writer.write(b"\x05\x00")  # no authentication
            _version, _cmd, _rsv, atyp = await reader.readexactly(4)
            if atyp == 1:
                host = ".".join(str(b) for b in await reader.readexactly(4))
            elif atyp == 3:
                host = (await reader.readexactly((await reader.readexactly(1))[0])).decode()
            else:
                return
            port = int.from_bytes(await reader.readexactly(2), "big")
            self.targets.append((host, port))
            up_reader, up_writer = await asyncio.open_connection(host, port)
            writer.write(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        finally:
            writer.close()


async def test_socks5_proxy_is_used(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    async with Socks5Proxy() as proxy:
        client = client_for(base_url=fake.base_url, http_proxy=proxy.url)
        result = await client.complete(QUESTION)
        await client.close()
    assert result.text == "echo: what is the secret plan?"
    assert proxy.targets == [("127.0.0.1", int(fake.base_url.rsplit(":", 1)[1]))]


async def test_dead_proxy_is_unavailable_not_bypassed(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    dead = FakeModel()
    await dead.start()
    dead_port = dead.base_url.rsplit(":", 1)[1]
    await dead.close()
    client = client_for(base_url=fake.base_url, http_proxy=f"socks5://127.0.0.1:{dead_port}")
    with pytest.raises(ModelUnavailableError, match="unreachable"):
        await client.complete(QUESTION)
    assert fake.requests == []


# --- the fake itself -------------------------------------------------------------------------------


async def test_fake_streams_sse_chunks(fake: FakeModel) -> None:
    fake.set_reply("abcdefghij" * 5)
    fake.set_stream(chunk_chars=7)
    sdk = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url + "/v1", max_retries=0)
    try:
        stream = await sdk.chat.completions.create(
            model="m",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            stream_options={"include_usage": True},
        )
        pieces: list[str] = []
        usage = None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            usage = chunk.usage or usage
    finally:
        await sdk.close()
    assert "".join(pieces) == "abcdefghij" * 5
    assert [len(p) for p in pieces] == [7] * 7 + [1]
    assert usage is not None
    assert usage.completion_tokens == 50


async def test_fake_wait_for_requests_times_out_clearly(fake: FakeModel) -> None:
    with pytest.raises(AssertionError, match="expected 1 requests"):
        await fake.wait_for_requests(1, timeout=0.05)
