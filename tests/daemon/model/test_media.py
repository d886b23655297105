"""ModelClient's media calls against FakeModel over real loopback HTTP: image generation, speech to text and
image understanding, on OpenAI-style and Azure endpoints, with their error mapping."""

from __future__ import annotations

import base64
import struct
import zlib
from collections.abc import Callable
from typing import Any

import openai
import pytest

from chatgpt_wecom.daemon.model.client import (
    Completion,
    ContentPolicyError,
    FeatureUnavailableError,
    GeneratedImage,
    ModelClient,
    ModelError,
    ModelUnavailableError,
)
from tests.daemon.model import test_client as test_llm
from tests.daemon.model.test_client import QUESTION, SECRET_KEY
from tests.fakes.model import FakeModel, content_policy_body, error_body, tiny_png

# test_client.py's fixtures: a clean environment, a FakeModel, and ModelClients built from settings overrides.
_clean_env = test_llm._clean_env
fake = test_llm.fake
client_for = test_llm.client_for

AUDIO = b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(64))  # what the daemon uploads; the fake never decodes it
PHOTO = tiny_png(3, 1)
AZURE = {
    "azure_on": True,
    "api_key": "",
    "azure_deployment_name": "chat-dep",
    "azure_api_version": "2024-10-21",
    "azure_openai_token": "azure-secret-token",
}


# --- availability ----------------------------------------------------------------------------------


def test_defaults_have_images_and_speech_but_no_vision(client_for: Callable[..., ModelClient]) -> None:
    client = client_for()
    assert (client.images_available, client.speech_available, client.vision_available) == (True, True, False)
    assert client_for(vision_model="gpt-4o").vision_available


async def test_unconfigured_features_name_the_key_and_send_nothing(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    client = client_for(base_url=fake.base_url, image_model="", speech_model=" ")
    assert not (client.images_available or client.speech_available or client.vision_available)
    with pytest.raises(FeatureUnavailableError, match="set image_model"):
        await client.generate_image("a cat")
    with pytest.raises(FeatureUnavailableError, match="set speech_model"):
        await client.transcribe(AUDIO, "voice.wav", "audio/wav")
    with pytest.raises(FeatureUnavailableError, match="set vision_model") as caught:
        await client.describe(QUESTION, PHOTO, "image/png")
    assert isinstance(caught.value, ModelError)
    assert fake.requests == []


async def test_azure_without_media_deployments(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, vision_model="gpt-4o", **AZURE)
    assert not (client.images_available or client.speech_available or client.vision_available)
    with pytest.raises(FeatureUnavailableError, match="on Azure; set azure_image_deployment"):
        await client.generate_image("a cat")
    with pytest.raises(FeatureUnavailableError, match="set azure_speech_deployment"):
        await client.transcribe(AUDIO, "voice.wav", "audio/wav")
    with pytest.raises(FeatureUnavailableError, match="set azure_vision_deployment"):
        await client.describe(QUESTION, PHOTO, "image/png")
    assert fake.requests == []


# --- image generation ------------------------------------------------------------------------------


async def test_generate_image_returns_the_png(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, image_size="1792x1024")
    image = await client.generate_image("a red fox in snow")

    assert image == GeneratedImage(
        data=FakeModel.PNG, content_type="image/png", revised_prompt="revised: a red fox in snow"
    )
    [request] = fake.requests
    assert (request.path, request.kind) == ("/v1/images/generations", "image")
    assert request.json == {
        "model": "dall-e-3",
        "prompt": "a red fox in snow",
        "size": "1792x1024",
        "n": 1,
        "response_format": "b64_json",
    }
    assert request.headers["authorization"] == f"Bearer {SECRET_KEY}"


async def test_gpt_image_models_get_no_response_format(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    """GPT image models always answer base64 and refuse `response_format`."""
    fake.set_image(b"\xff\xd8\xff\xe0 a jpeg", revised_prompt=None)
    image = await client_for(base_url=fake.base_url, image_model="gpt-image-1").generate_image("a fox")
    assert (image.content_type, image.revised_prompt) == ("image/jpeg", None)
    assert fake.requests[0].json["model"] == "gpt-image-1"
    assert "response_format" not in fake.requests[0].json


async def test_image_without_data_is_unavailable(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.set_image(b"")
    with pytest.raises(ModelUnavailableError, match="returned no image data"):
        await client_for(base_url=fake.base_url).generate_image("a fox")


@pytest.mark.parametrize(
    "body",
    [
        content_policy_body(),
        {  # Azure's content filter
            "error": {
                "code": "contentFilter",
                "message": "Your task failed as a result of our safety system.",
                "inner_error": {"code": "ResponsibleAIPolicyViolation"},
            }
        },
        error_body("Request was rejected by the safety system: the secret plan", code="moderation_blocked"),
    ],
)
async def test_content_policy_refusal(
    fake: FakeModel, client_for: Callable[..., ModelClient], body: dict[str, Any]
) -> None:
    fake.fail(400, body=body)
    with pytest.raises(ContentPolicyError, match="content policy") as caught:
        await client_for(base_url=fake.base_url, model_max_retries=2).generate_image("the secret plan")
    assert "secret plan" not in str(caught.value)
    assert caught.value.__cause__ is None
    assert len(fake.requests) == 1  # a 400 is not retried


async def test_other_image_failures(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, model_max_retries=1)
    fake.fail(400, body=error_body("size must be one of …", code="invalid_value"))
    with pytest.raises(ModelUnavailableError, match="HTTP 400, code invalid_value") as caught:
        await client.generate_image("a fox")
    assert not isinstance(caught.value, ContentPolicyError)
    fake.fail(404, body=error_body("The model `dall-e-9` does not exist", code="model_not_found"))
    with pytest.raises(ModelUnavailableError, match="check image_model"):
        await client.generate_image("a fox")
    fake.fail(500, times=2)
    with pytest.raises(ModelUnavailableError, match="HTTP 500"):
        await client.generate_image("a fox")
    assert len(fake.requests) == 4  # the 500 once retried
    assert (await client.generate_image("a fox")).data == FakeModel.PNG


# --- speech to text --------------------------------------------------------------------------------


async def test_transcribe_uploads_the_audio(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.set_transcript("  你好，这是一条语音消息。 ")
    text = await client_for(base_url=fake.base_url).transcribe(AUDIO, "voice.wav", "audio/wav")

    assert text == "你好，这是一条语音消息。"
    [request] = fake.requests
    assert (request.path, request.kind) == ("/v1/audio/transcriptions", "transcription")
    assert request.json == {"model": "whisper-1"}
    assert request.upload is not None
    assert (request.upload.field, request.upload.filename, request.upload.content_type) == (
        "file",
        "voice.wav",
        "audio/wav",
    )
    assert (request.upload.size, request.upload.data) == (len(AUDIO), AUDIO)


async def test_transcribe_failures(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, speech_model="whisper-large")
    fake.fail(404, body=error_body("no such model", code="model_not_found"))
    with pytest.raises(ModelUnavailableError, match="check speech_model"):
        await client.transcribe(AUDIO, "voice.wav", "audio/wav")
    fake.fail(400, body=error_body("Invalid file format.", code="invalid_value"))
    with pytest.raises(ModelUnavailableError, match="rejected the request"):
        await client.transcribe(AUDIO, "voice.amr", "audio/amr")
    assert [r.json["model"] for r in fake.requests] == ["whisper-large"] * 2


# --- image understanding ---------------------------------------------------------------------------


async def test_describe_sends_the_data_url_to_the_vision_model(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    client = client_for(base_url=fake.base_url, vision_model="gpt-4o-vision")
    messages = [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "earlier question"},
        {"role": "assistant", "content": "earlier answer"},
        {"role": "user", "content": "what is in this picture?"},
    ]
    result = await client.describe(messages, PHOTO, "image/png", max_tokens=300)

    assert result == Completion(
        text="echo: what is in this picture?",
        model="gpt-4o-vision",
        prompt_tokens=len("be brief" + "earlier question" + "earlier answer" + "what is in this picture?"),
        completion_tokens=len("echo: what is in this picture?"),
    )
    [request] = fake.requests
    url = "data:image/png;base64," + base64.b64encode(PHOTO).decode()
    assert request.path == "/v1/chat/completions"
    assert (request.json["model"], request.json["max_tokens"]) == ("gpt-4o-vision", 300)
    assert request.images == [url]
    assert request.messages[:3] == messages[:3]
    assert request.messages[3] == {
        "role": "user",
        "content": [
            {"type": "text", "text": "what is in this picture?"},
            {"type": "image_url", "image_url": {"url": url}},
        ],
    }
    assert client.model == "gpt-test"  # chat itself is unchanged


async def test_describe_an_image_without_text(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, vision_model="gpt-4o")
    await client.describe([{"role": "user", "content": ""}], b"\xff\xd8\xff jpeg", "IMAGE/JPEG; q=1")
    [part] = fake.requests[0].messages[0]["content"]
    assert part == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,/9j/IGpwZWc="}}


async def test_describe_refuses_bad_input_before_sending(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    client = client_for(base_url=fake.base_url, vision_model="gpt-4o")
    with pytest.raises(ValueError, match="user message"):
        await client.describe([{"role": "system", "content": "x"}], PHOTO, "image/png")
    with pytest.raises(ValueError, match="not an image"):
        await client.describe(QUESTION, AUDIO, "audio/wav")
    assert fake.requests == []


async def test_describe_failures_are_mapped(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(base_url=fake.base_url, vision_model="gpt-4o")
    fake.fail(404, body=error_body("no such model", code="model_not_found"))
    with pytest.raises(ModelUnavailableError, match="check vision_model"):
        await client.describe(QUESTION, PHOTO, "image/png")


# --- Azure -----------------------------------------------------------------------------------------


async def test_azure_media_use_their_deployments(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    client = client_for(
        base_url=fake.base_url,
        azure_image_deployment="dalle3-dep",
        azure_speech_deployment="whisper-dep",
        azure_vision_deployment="gpt4o-vision-dep",
        **AZURE,
    )
    assert client.images_available and client.speech_available and client.vision_available

    image = await client.generate_image("a fox")
    text = await client.transcribe(AUDIO, "voice.wav", "audio/wav")
    seen = await client.describe(QUESTION, PHOTO, "image/png")
    chat = await client.complete(QUESTION)

    assert (image.data, text, seen.model, chat.model) == (
        FakeModel.PNG,
        "fake transcript",
        "gpt4o-vision-dep",
        "chat-dep",
    )
    assert [r.path for r in fake.requests] == [
        "/openai/deployments/dalle3-dep/images/generations",
        "/openai/deployments/whisper-dep/audio/transcriptions",
        "/openai/deployments/gpt4o-vision-dep/chat/completions",
        "/openai/deployments/chat-dep/chat/completions",
    ]
    assert [r.deployment for r in fake.requests] == ["dalle3-dep", "whisper-dep", "gpt4o-vision-dep", "chat-dep"]
    for request in fake.requests:
        assert request.query == {"api-version": "2024-10-21"}
        assert request.headers["api-key"] == "azure-secret-token"
        assert "authorization" not in request.headers
    assert fake.requests[2].images == ["data:image/png;base64," + base64.b64encode(PHOTO).decode()]


async def test_azure_deployment_clients_are_built_on_first_use_and_closed(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    client = client_for(base_url=fake.base_url, azure_image_deployment="dalle3-dep", **AZURE)
    built: dict[str, openai.AsyncOpenAI] = client._media._deployments._clients  # type: ignore[union-attr]
    assert built == {}
    await client.generate_image("a fox")
    await client.generate_image("a hen")
    assert list(built) == ["dalle3-dep"]
    sdk = built["dalle3-dep"]
    await client.close()
    assert sdk.is_closed()


async def test_azure_image_refusals_and_bad_credentials(
    fake: FakeModel, client_for: Callable[..., ModelClient]
) -> None:
    client = client_for(base_url=fake.base_url, azure_image_deployment="dalle3-dep", **AZURE)
    fake.fail(400, body={"error": {"code": "content_filter", "message": "filtered by content management policy"}})
    with pytest.raises(ContentPolicyError):
        await client.generate_image("a fox")
    fake.expected_key = "another-token"
    with pytest.raises(ModelUnavailableError, match="azure_openai_token") as caught:
        await client.generate_image("a fox")
    assert "azure-secret-token" not in str(caught.value)
    fake.expected_key = None
    fake.fail(404, body=error_body("The API deployment for this resource does not exist.", code="DeploymentNotFound"))
    with pytest.raises(ModelUnavailableError, match="check azure_image_deployment"):
        await client.generate_image("a fox")


# --- the fake itself -------------------------------------------------------------------------------


def test_fake_png_is_a_valid_png() -> None:
    data = FakeModel.PNG
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    chunks: list[tuple[bytes, bytes]] = []
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind, body = data[at + 4 : at + 8], data[at + 8 : at + 8 + length]
        (crc,) = struct.unpack(">I", data[at + 8 + length : at + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        at += 12 + length
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">II", chunks[0][1][:8]) == (2, 2)
    assert len(zlib.decompress(chunks[1][1])) == 2 * (1 + 2 * 3)  # two rows: filter byte + 2 RGB pixels


async def test_fake_records_vision_text_parts(fake: FakeModel) -> None:
    sdk = openai.AsyncOpenAI(api_key="k", base_url=fake.base_url + "/v1", max_retries=0)
    try:
        await sdk.chat.completions.create(
            model="m",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "look "},
                        {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
                        {"type": "text", "text": "here"},
                    ],
                }
            ],
        )
    finally:
        await sdk.close()
    [request] = fake.requests
    assert (request.kind, request.deployment) == ("chat", None)
    assert request.last_user_text == "look here"
    assert request.images == ["https://example.com/a.png"]


async def test_fake_reset_restores_media_defaults(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    fake.set_image(b"GIF89a", revised_prompt="fixed")
    fake.set_transcript("changed")
    fake.set_stream(fail_after=0)
    fake.reset()
    client = client_for(base_url=fake.base_url)
    assert (await client.generate_image("x")).revised_prompt == "revised: x"
    assert await client.transcribe(AUDIO, "a.wav", "audio/wav") == "fake transcript"
    stream = client.stream(QUESTION)
    async with stream:
        assert "".join([d async for d in stream]) == "echo: what is the secret plan?"


async def test_fake_takes_large_uploads(fake: FakeModel, client_for: Callable[..., ModelClient]) -> None:
    """WeCom voice converted to WAV and photos sent inline are megabytes, beyond aiohttp's 1 MiB default."""
    client = client_for(base_url=fake.base_url, vision_model="gpt-4o")
    big = bytes(5 * 1024 * 1024)
    assert await client.transcribe(big, "voice.wav", "audio/wav") == "fake transcript"
    await client.describe(QUESTION, b"\x89PNG\r\n\x1a\n" + big, "image/png")
    assert fake.requests[0].upload is not None and fake.requests[0].upload.size == len(big)
    assert len(fake.requests[1].images[0]) > len(big)
