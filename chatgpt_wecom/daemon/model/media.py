"""The media calls behind `llm.ModelClient`: image generation, speech to text and image understanding.

On OpenAI (or a compatible API) every feature uses the chat client with its own model name. On Azure each
feature has its own deployment, which is part of the URL, so each gets its own SDK client, built on first use.
A feature whose model (deployment) is empty is not configured: its call raises FeatureUnavailableError
naming the key to set, without sending anything.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from dataclasses import dataclass

import openai
from openai.types import ImagesResponse
from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.media.images import image_kind
from chatgpt_wecom.daemon.model.base import Completion, ErrorMapper, FeatureUnavailableError, chat_completion

__all__ = [
    "DeploymentClients",
    "GeneratedImage",
    "MediaCalls",
    "MediaModels",
    "decode_image",
    "image_data_url",
    "with_image",
]

_WHAT = {"image": "image generation", "speech": "speech to text", "vision": "image understanding"}


@dataclass(frozen=True, slots=True)
class GeneratedImage:
    """One generated image: its bytes, their MIME type, and the prompt as the model rewrote it (if it did)."""

    data: bytes
    content_type: str
    revised_prompt: str | None


@dataclass(frozen=True, slots=True)
class MediaModels:
    """Where the optional features go: model names, or deployment names when `azure`; "" = not configured."""

    image: str = ""
    image_size: str = "1024x1024"
    speech: str = ""
    vision: str = ""
    image_b64_param: bool = True
    """Send `response_format=b64_json`; GPT image models refuse the parameter (they always answer base64)."""
    azure: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> MediaModels:
        """The features `settings` configure: `*_model` keys, or the `azure_*_deployment` keys with `azure_on`."""
        image_model = settings.image_model.strip()
        b64_param = not image_model.lower().startswith(("gpt-image", "chatgpt-image"))
        if settings.azure_on:
            return cls(
                image=settings.azure_image_deployment.strip(),
                image_size=settings.image_size.strip(),
                speech=settings.azure_speech_deployment.strip(),
                vision=settings.azure_vision_deployment.strip(),
                image_b64_param=b64_param,
                azure=True,
            )
        return cls(
            image=image_model,
            image_size=settings.image_size.strip(),
            speech=settings.speech_model.strip(),
            vision=settings.vision_model.strip(),
            image_b64_param=b64_param,
        )

    def key(self, feature: str) -> str:
        """The config key that names `feature`'s model ("image", "speech" or "vision")."""
        if self.azure:
            return f"azure_{feature}_deployment"
        return f"{feature}_model"


class DeploymentClients:
    """Azure: one SDK client per deployment (the deployment is part of the URL), each built on first use."""

    def __init__(self, build: Callable[[str], openai.AsyncOpenAI]) -> None:
        """`build(deployment)` makes the client for one deployment."""
        self._build = build
        self._clients: dict[str, openai.AsyncOpenAI] = {}

    def get(self, deployment: str) -> openai.AsyncOpenAI:
        """The client whose URL ends in `/openai/deployments/{deployment}`."""
        client = self._clients.get(deployment)
        if client is None:
            client = self._clients[deployment] = self._build(deployment)
        return client

    async def close(self) -> None:
        """Close every client built so far."""
        clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            await client.close()


class MediaCalls:
    """The media requests of one endpoint, routed per `models` and mapped by `errors`."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        models: MediaModels,
        errors: ErrorMapper,
        deployments: DeploymentClients | None = None,
    ) -> None:
        """`client` serves every feature, unless `deployments` (Azure) gives each its deployment's client."""
        self._client, self._models, self._errors, self._deployments = client, models, errors, deployments

    def available(self, feature: str) -> bool:
        """Whether `feature` ("image", "speech" or "vision") is configured."""
        return bool(getattr(self._models, feature))

    async def generate_image(self, prompt: str) -> GeneratedImage:
        """One image for `prompt` (see `ModelClient.generate_image`)."""
        model, client = self._route("image")
        key = self._models.key("image")
        try:
            response = await client.images.generate(
                model=model,
                prompt=prompt,
                size=self._models.image_size,
                n=1,
                response_format="b64_json" if self._models.image_b64_param else openai.omit,
            )
        except openai.OpenAIError as exc:
            raise self._errors(exc, key=key, policy=True) from None
        image = decode_image(response)
        if image is None:
            raise self._errors.unavailable(f"returned no image data (check {key})")
        return image

    async def transcribe(self, audio: bytes, filename: str, content_type: str) -> str:
        """The text spoken in `audio` (see `ModelClient.transcribe`)."""
        model, client = self._route("speech")
        try:
            result = await client.audio.transcriptions.create(model=model, file=(filename, audio, content_type))
        except openai.OpenAIError as exc:
            raise self._errors(exc, key=self._models.key("speech")) from None
        return (result if isinstance(result, str) else result.text).strip()

    async def describe(
        self, messages: list[ChatCompletionMessageParam], image: bytes, content_type: str, max_tokens: int | None
    ) -> Completion:
        """A completion of `messages` with the image attached to the last user message (see `ModelClient.describe`)."""
        model, client = self._route("vision")
        params = with_image(messages, image_data_url(image, content_type))
        return await chat_completion(client, model, params, max_tokens, self._errors, key=self._models.key("vision"))

    async def close(self) -> None:
        """Close the deployments' clients (the shared `client` belongs to the caller)."""
        if self._deployments is not None:
            await self._deployments.close()

    def _route(self, feature: str) -> tuple[str, openai.AsyncOpenAI]:
        model: str = getattr(self._models, feature)
        if not model:
            where = " on Azure" if self._models.azure else ""
            raise FeatureUnavailableError(f"{_WHAT[feature]} is not configured{where}; set {self._models.key(feature)}")
        return model, self._client if self._deployments is None else self._deployments.get(model)


def image_data_url(image: bytes, content_type: str) -> str:
    """`image` as a `data:` URL, the form chat models accept inline."""
    content_type = content_type.split(";", 1)[0].strip().lower()
    if not content_type.startswith("image/"):
        raise ValueError(f"not an image content type: {content_type!r}")
    return f"data:{content_type};base64,{base64.b64encode(image).decode('ascii')}"


def with_image(messages: list[ChatCompletionMessageParam], url: str) -> list[ChatCompletionMessageParam]:
    """`messages` with the image at `url` added to the last user message (its text, if any, comes first)."""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if message["role"] != "user":
            continue
        text = message.get("content")
        parts: list[ChatCompletionContentPartParam] = []
        if isinstance(text, str) and text.strip():
            parts.append({"type": "text", "text": text})
        parts.append({"type": "image_url", "image_url": {"url": url}})
        return [*messages[:index], {"role": "user", "content": parts}, *messages[index + 1 :]]
    raise ValueError("describe needs a user message to attach the image to")


def decode_image(response: ImagesResponse) -> GeneratedImage | None:
    """The first image of an images response; None when it holds no (valid) base64 data."""
    if not response.data or not response.data[0].b64_json:
        return None
    first = response.data[0]
    try:
        data = base64.b64decode(first.b64_json or "", validate=True)
    except (binascii.Error, ValueError):
        return None
    if not data:
        return None
    return GeneratedImage(
        data=data, content_type=image_kind(data) or "image/png", revised_prompt=first.revised_prompt or None
    )
