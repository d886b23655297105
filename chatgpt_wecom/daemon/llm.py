"""The model endpoint: one chat completion through the openai SDK (OpenAI, Azure, any compatible API).

Failures become two typed errors whose text is safe to log and show: it names the endpoint's host, the HTTP
status and the config key to check — never the API key, the prompt or the answer. The SDK does the bounded
retries (`model_max_retries`; exponential backoff from 0.5 s, or the server's `Retry-After`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import openai
from openai.types.chat import ChatCompletionMessageParam

from chatgpt_wecom.config import Settings

__all__ = [
    "Completion",
    "ContextTooLongError",
    "ModelClient",
    "ModelError",
    "ModelUnavailableError",
    "openai_base_url",
]

_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "too many tokens",
    "reduce the length",
)
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ModelError(Exception):
    """A model call failed. `str(e)` is safe to log: no key, no prompt text, no answer."""


class ContextTooLongError(ModelError):
    """The endpoint rejected the request because the context (prompt + max_tokens) is too long."""


class ModelUnavailableError(ModelError):
    """The endpoint could not answer, after the SDK's bounded retries (at once when a retry cannot help)."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its text, the model that produced it, and the token usage (0 when not reported)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int


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


def _is_context_error(exc: openai.APIStatusError) -> bool:
    if exc.code == "context_length_exceeded":
        return True
    text = f"{exc.message} {exc.body}".lower()
    return any(phrase in text for phrase in _CONTEXT_PHRASES)


class ModelClient:
    """Sends chat completions to one configured endpoint and maps its failures to `ModelError`s."""

    def __init__(self, client: openai.AsyncOpenAI, model: str, *, endpoint: str) -> None:
        """Wrap `client`; `model` is sent with every request; `endpoint` is a safe description (host only)."""
        self._client = client
        self._model = model
        self._endpoint = endpoint

    @classmethod
    def from_settings(cls, settings: Settings) -> ModelClient:
        """The client the settings describe: Azure when `azure_on`, else OpenAI or a compatible `base_url`."""
        http_client = openai.DefaultAsyncHttpxClient(proxy=settings.http_proxy) if settings.http_proxy else None
        client: openai.AsyncOpenAI
        if settings.azure_on:
            azure_endpoint = settings.base_url or f"https://{settings.azure_resource_name}.openai.azure.com"
            client = openai.AsyncAzureOpenAI(
                azure_endpoint=azure_endpoint,
                azure_deployment=settings.azure_deployment_name,
                api_version=settings.azure_api_version,
                api_key=settings.azure_openai_token.get_secret_value(),
                timeout=settings.model_timeout,
                max_retries=settings.model_max_retries,
                http_client=http_client,
            )
            return cls(client, settings.azure_deployment_name, endpoint=_host(azure_endpoint))
        client = openai.AsyncOpenAI(
            api_key=settings.api_key.get_secret_value(),
            base_url=openai_base_url(settings.base_url),
            timeout=settings.model_timeout,
            max_retries=settings.model_max_retries,
            http_client=http_client,
        )
        return cls(client, settings.model, endpoint=_host(str(client.base_url)))

    @property
    def model(self) -> str:
        """The model name (the deployment name on Azure) sent with each request."""
        return self._model

    @property
    def endpoint(self) -> str:
        """The endpoint's host (and port), for logs and status; never a key."""
        return self._endpoint

    async def complete(self, messages: Sequence[Mapping[str, str]], *, max_tokens: int | None = None) -> Completion:
        """One chat completion of `messages` (dicts with `role` system/user/assistant and `content`).

        Raises ContextTooLongError when the endpoint refuses the context's length, ModelUnavailableError for
        every other failure once the SDK's retries are spent.
        """
        params = [_message(m) for m in messages]
        try:
            response = await self._client.chat.completions.create(
                model=self._model,
                messages=params,
                max_tokens=openai.omit if max_tokens is None else max_tokens,
            )
        except openai.OpenAIError as exc:
            raise self._error(exc) from None
        if not response.choices:
            raise ModelUnavailableError(f"model endpoint {self._endpoint} returned no choices")
        usage = response.usage
        return Completion(
            text=response.choices[0].message.content or "",
            model=response.model or self._model,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )

    async def close(self) -> None:
        """Close the HTTP connections (also those of a client passed to the constructor)."""
        await self._client.close()

    def _error(self, exc: openai.OpenAIError) -> ModelError:
        where = f"model endpoint {self._endpoint}"
        if isinstance(exc, openai.APITimeoutError):
            return ModelUnavailableError(f"{where} timed out (model_timeout)")
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            return ModelUnavailableError(f"{where} is unreachable ({cause}); check base_url / http_proxy")
        if not isinstance(exc, openai.APIStatusError):
            return ModelUnavailableError(f"{where} failed ({type(exc).__name__})")
        status = exc.status_code
        code = f", code {exc.code}" if exc.code and _SAFE_CODE.fullmatch(exc.code) else ""
        if status in (400, 413, 422) and _is_context_error(exc):
            return ContextTooLongError(f"{where} rejected the request: context too long (HTTP {status}{code})")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ModelUnavailableError(
                f"{where} refused the credentials (HTTP {status}{code}); "
                "check api_key (azure_openai_token with azure_on)"
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelUnavailableError(f"{where} answered HTTP 404{code}; check model / azure_deployment_name")
        if isinstance(exc, openai.RateLimitError):
            return ModelUnavailableError(f"{where} is rate limiting or out of quota (HTTP 429{code})")
        if status >= 500:
            return ModelUnavailableError(f"{where} failed with HTTP {status}{code}")
        return ModelUnavailableError(f"{where} rejected the request (HTTP {status}{code})")
