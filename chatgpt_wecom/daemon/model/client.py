"""The model endpoint through the openai SDK (OpenAI, Azure, any compatible API): chat completions, whole
(`complete`) or streamed (`stream`), and the optional media features — image generation, speech to text and
image understanding (`model/media.py`). The errors and their mapping live in `model/base.py`; import them from here.

Failures become typed `ModelError`s whose text is safe to log and show: it names the endpoint's host, the HTTP
status and the config key to check — never the API key, the prompt or the answer. The SDK does the bounded
retries (`model_max_retries`; exponential backoff from 0.5 s, or the server's `Retry-After`); a stream is only
retried while it opens, never once text has arrived. A rate limit (HTTP 429) that outlasts those retries holds every
call (`model/pace.py`): they wait for the provider's Retry-After and go on, instead of failing one by one.

Time limits (`llm_http`): each attempt of a streamed answer must start — its first byte — within
`first_token_timeout`, and then gets `model_timeout` for each next piece; an answer that is not streamed gets
`model_timeout` as a whole. Connecting is bounded by `first_token_timeout` for every call.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk, ChatCompletionMessageParam

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.model.base import (
    Completion,
    ContentPolicyError,
    ContextTooLongError,
    ErrorMapper,
    FeatureUnavailableError,
    ModelError,
    ModelTimeoutError,
    ModelUnavailableError,
    chat_completion,
    mentions,
)
from chatgpt_wecom.daemon.model.http import http_client, sdk_timeout
from chatgpt_wecom.daemon.model.media import DeploymentClients, GeneratedImage, MediaCalls, MediaModels
from chatgpt_wecom.daemon.model.pace import ProviderPace, Waiting

__all__ = [
    "AnswerStream",
    "Completion",
    "ContentPolicyError",
    "ContextTooLongError",
    "FeatureUnavailableError",
    "GeneratedImage",
    "MediaModels",
    "ModelClient",
    "ModelError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "Waiting",
    "openai_base_url",
]


def openai_base_url(base_url: str) -> str | None:
    """The SDK's base URL for the `base_url` setting: None for OpenAI's own, `/v1` added to a bare host."""
    base_url = base_url.strip()
    if not base_url:
        return None
    parts = urlsplit(base_url)
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    return f"{host}:{parts.port}" if parts.port else host


def _message(message: Mapping[str, str]) -> ChatCompletionMessageParam:
    role, content = message["role"], message["content"]
    if role == "system":
        return {"role": "system", "content": content}
    if role == "user":
        return {"role": "user", "content": content}
    if role == "assistant":
        return {"role": "assistant", "content": content}
    raise ValueError(f"unsupported message role {role!r} (system, user or assistant)")


class AnswerStream:
    """A streamed answer, from `ModelClient.stream`. Use it as an async context manager and iterate it:

        async with client.stream(messages, max_tokens=500) as answer:
            async for delta in answer:        # the answer's text, piece by piece, in order
                ...
        answer.completion                     # the whole Completion, once the iteration has ended

    Opening (on `async with` or the first iteration) raises like `complete`: ContextTooLongError or
    ModelUnavailableError. A failure mid-answer — the connection broke, a read timed out, an event was not
    JSON, the stream ended without a finish reason — raises ModelUnavailableError; `text` then holds what
    arrived before it. Leave the `async with` early to stop reading: the connection is released.
    `completion.prompt_tokens` / `completion_tokens` come from the endpoint's final usage chunk (requested
    with `stream_options.include_usage`), 0 when it sends none; `completion.first_token` is the time to first
    token, from `ModelClient.stream` to the first text.
    """

    def __init__(
        self,
        owner: ModelClient,
        params: list[ChatCompletionMessageParam],
        max_tokens: int | None,
        waiting: Waiting | None = None,
    ) -> None:
        """Not opened yet; `ModelClient.stream` makes these."""
        self._owner, self._params, self._max_tokens, self._waiting = owner, params, max_tokens, waiting
        self._sdk: openai.AsyncStream[ChatCompletionChunk] | None = None
        self._pieces: list[str] = []
        self._model = ""
        self._usage: CompletionUsage | None = None
        self._finished = False
        self._done = False
        self._completion: Completion | None = None
        self._asked_at = time.monotonic()
        self._first_token: float | None = None  # seconds from the request to the first text

    async def __aenter__(self) -> AnswerStream:
        await self._open()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def __aiter__(self) -> AnswerStream:
        return self

    async def __anext__(self) -> str:
        if self._done:
            raise StopAsyncIteration
        sdk = await self._open()
        try:
            while True:
                chunk = await anext(sdk)
                if delta := self._take(chunk):
                    if self._first_token is None:
                        self._first_token = time.monotonic() - self._asked_at
                    return delta
        except StopAsyncIteration:
            await self.aclose()
            if not self._finished:
                raise self._owner._errors.broken("the stream ended before the answer was complete") from None
            self._completion = Completion(
                text=self.text,
                model=self._model or self._owner.model,
                prompt_tokens=self._usage.prompt_tokens if self._usage else 0,
                completion_tokens=self._usage.completion_tokens if self._usage else 0,
                first_token=self._first_token,
            )
            raise
        except openai.OpenAIError as exc:
            await self.aclose()
            raise self._owner._errors(exc, mid_stream=True) from None
        except ValueError:  # an event that is not JSON
            await self.aclose()
            raise self._owner._errors.broken("the stream was malformed") from None

    @property
    def text(self) -> str:
        """The answer's text so far (all of it once finished; the part that arrived before a failure)."""
        return "".join(self._pieces)

    @property
    def completion(self) -> Completion:
        """The whole answer with its usage. RuntimeError until the iteration has ended normally."""
        if self._completion is None:
            raise RuntimeError("the answer stream has not finished")
        return self._completion

    async def aclose(self) -> None:
        """Release the connection (early, when the caller stops reading); iterating afterwards ends at once."""
        self._done = True
        if self._sdk is not None:
            await self._sdk.close()

    async def _open(self) -> openai.AsyncStream[ChatCompletionChunk]:
        if self._sdk is None:
            if self._done:
                raise RuntimeError("the answer stream is closed")
            try:
                owner = self._owner
                opening = lambda: owner._open_stream(self._params, self._max_tokens)  # noqa: E731
                self._sdk = await owner.pace.run(opening, self._waiting)
            except BaseException:
                self._done = True
                raise
        return self._sdk

    def _take(self, chunk: ChatCompletionChunk) -> str:
        self._model = self._model or chunk.model
        self._usage = chunk.usage or self._usage
        if not chunk.choices:
            return ""
        choice = chunk.choices[0]
        self._finished = self._finished or choice.finish_reason is not None
        delta = choice.delta.content if choice.delta else None
        if delta:
            self._pieces.append(delta)
        return delta or ""


class ModelClient:
    """Sends requests to one configured endpoint and maps its failures to `ModelError`s."""

    def __init__(
        self,
        client: openai.AsyncOpenAI,
        model: str,
        *,
        endpoint: str,
        media: MediaModels | None = None,
        deployments: DeploymentClients | None = None,
        pace: ProviderPace | None = None,
    ) -> None:
        """Wrap `client`; `model` is sent with every chat request; `endpoint` is a safe description (host only).

        `media` names the models of the optional features (none by default); with `deployments` (Azure) they
        are deployment names, each reached through its own client from `deployments`.
        """
        self._client = client
        self._model = model
        self._endpoint = endpoint
        self._errors = ErrorMapper(endpoint)
        self._media = MediaCalls(client, media or MediaModels(), self._errors, deployments)
        self._stream_usage = True
        self.pace = pace or ProviderPace()  # one rate limit for every call to this endpoint

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelClient:
        """The client the settings describe: Azure when `azure_on`, else OpenAI or a compatible `base_url`."""
        media = MediaModels.from_settings(settings)
        if settings.azure_on:
            azure_endpoint = settings.base_url or f"https://{settings.azure_resource_name}.openai.azure.com"

            def azure(deployment: str) -> openai.AsyncOpenAI:
                return openai.AsyncAzureOpenAI(
                    azure_endpoint=azure_endpoint,
                    azure_deployment=deployment,
                    api_version=settings.azure_api_version,
                    api_key=settings.azure_openai_token.get_secret_value(),
                    timeout=sdk_timeout(settings),
                    max_retries=settings.model_max_retries,
                    http_client=http_client(settings),
                )

            return cls(
                azure(settings.azure_deployment_name),
                settings.azure_deployment_name,
                endpoint=_host(azure_endpoint),
                media=media,
                deployments=DeploymentClients(azure),
            )
        client = openai.AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=openai_base_url(settings.base_url),
            timeout=sdk_timeout(settings),
            max_retries=settings.model_max_retries,
            http_client=http_client(settings),
        )
        return cls(client, settings.model, endpoint=_host(str(client.base_url)), media=media)

    @property
    def model(self) -> str:
        """The model name (the deployment name on Azure) sent with each chat request."""
        return self._model

    @property
    def endpoint(self) -> str:
        """The endpoint's host (and port), for logs and status; never a key."""
        return self._endpoint

    @property
    def closed(self) -> bool:
        """Whether `close()` has closed the client's HTTP connections."""
        return self._client.is_closed()

    @property
    def images_available(self) -> bool:
        """Whether `generate_image` is configured (`image_model`; `azure_image_deployment` on Azure)."""
        return self._media.available("image")

    @property
    def speech_available(self) -> bool:
        """Whether `transcribe` is configured (`speech_model`; `azure_speech_deployment` on Azure)."""
        return self._media.available("speech")

    @property
    def vision_available(self) -> bool:
        """Whether `describe` is configured (`vision_model`; `azure_vision_deployment` on Azure)."""
        return self._media.available("vision")

    async def complete(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int | None = None, waiting: Waiting | None = None
    ) -> Completion:
        """One chat completion of `messages` (dicts with `role` system/user/assistant and `content`).

        Raises ContextTooLongError when the endpoint refuses the context's length, ModelUnavailableError for
        every other failure once the SDK's retries are spent. `waiting` is told of each wait for a rate limit.
        """
        params = [_message(m) for m in messages]
        call = lambda: chat_completion(self._client, self._model, params, max_tokens, self._errors)  # noqa: E731
        return await self.pace.run(call, waiting)

    def stream(
        self, messages: Sequence[Mapping[str, str]], *, max_tokens: int | None = None, waiting: Waiting | None = None
    ) -> AnswerStream:
        """The answer to `messages` as it is written: see `AnswerStream` (`async with`, then `async for`).

        Nothing is sent until the stream is entered or iterated; a bad role raises ValueError at once. `waiting`
        is told of each wait for a rate limit while it opens.
        """
        return AnswerStream(self, [_message(m) for m in messages], max_tokens, waiting)

    async def generate_image(self, prompt: str) -> GeneratedImage:
        """One `image_size` image for `prompt` from `image_model` (`azure_image_deployment` on Azure).

        Raises FeatureUnavailableError when not configured, ContentPolicyError when the safety system refuses
        the prompt, ModelUnavailableError for every other failure (also an answer without base64 image data).
        """
        return await self.pace.run(lambda: self._media.generate_image(prompt))

    async def transcribe(self, audio: bytes, filename: str, content_type: str) -> str:
        """The text spoken in `audio`, a file named `filename` of type `content_type`, by `speech_model`.

        Raises FeatureUnavailableError when not configured (`azure_speech_deployment` on Azure),
        ModelUnavailableError for every failure of the endpoint (an unsupported audio format is an HTTP 400).
        """
        return await self.pace.run(lambda: self._media.transcribe(audio, filename, content_type))

    async def describe(
        self,
        messages: Sequence[Mapping[str, str]],
        image: bytes,
        content_type: str,
        *,
        max_tokens: int | None = None,
        waiting: Waiting | None = None,
    ) -> Completion:
        """A chat completion of `messages` by `vision_model`, the image attached to the last user message.

        Raises ValueError when there is no user message or `content_type` is not `image/…`; then like
        `complete`, plus FeatureUnavailableError when vision is not configured (`azure_vision_deployment`).
        """
        params = [_message(m) for m in messages]
        return await self.pace.run(lambda: self._media.describe(params, image, content_type, max_tokens), waiting)

    async def close(self) -> None:
        """Close the HTTP connections (also those of a client passed to the constructor)."""
        await self._client.close()
        await self._media.close()

    async def _open_stream(
        self, params: list[ChatCompletionMessageParam], max_tokens: int | None
    ) -> openai.AsyncStream[ChatCompletionChunk]:
        """Open a streamed completion, asking for the final usage chunk unless the endpoint refused that once
        (Azure before api-version 2024-10-21 rejects `stream_options`): then it is asked again without it."""
        while True:
            usage = self._stream_usage
            try:
                return await self._client.chat.completions.create(
                    model=self._model,
                    messages=params,
                    max_tokens=openai.omit if max_tokens is None else max_tokens,
                    stream=True,
                    stream_options={"include_usage": True} if usage else openai.omit,
                )
            except openai.BadRequestError as exc:
                if not (usage and mentions(exc, "stream_options")):
                    raise self._errors(exc) from None
                self._stream_usage = False
            except openai.OpenAIError as exc:
                raise self._errors(exc) from None
