"""What every part of the model client shares: the `Completion`, the `ModelError` family, the mapping of SDK
failures onto it, and the one chat-completion call. Import these names from `llm`, which re-exports them.

An error's text is safe to log and show: it names the endpoint's host, the HTTP status and the config key to
check — never the API key, the prompt or the answer (the SDK's exception is dropped, not chained).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import httpx2
import openai
from openai.types.chat import ChatCompletion, ChatCompletionMessageParam

from chatgpt_wecom.daemon.model.http import NoFirstByte

__all__ = [
    "CHAT_MODEL_KEY",
    "Completion",
    "ContentPolicyError",
    "ContextTooLongError",
    "ErrorMapper",
    "FeatureUnavailableError",
    "ModelError",
    "ModelTimeoutError",
    "ModelUnavailableError",
    "RateLimitedError",
    "chat_completion",
]

CHAT_MODEL_KEY = "model / azure_deployment_name"

_CONTEXT_PHRASES = (
    "context_length_exceeded",
    "maximum context length",
    "too many tokens",
    "reduce the length",
)
# Codes and phrases of a safety-system refusal: OpenAI (DALL·E, GPT image) and Azure's content filter.
_POLICY_CODES = frozenset({"content_policy_violation", "contentfilter", "content_filter", "moderation_blocked"})
_POLICY_PHRASES = (
    "responsibleaipolicyviolation",
    "content_policy_violation",
    "safety system",
    "content management policy",
)
_SAFE_CODE = re.compile(r"[A-Za-z0-9_.\-]{1,64}")


class ModelError(Exception):
    """A model call failed. `str(e)` is safe to log: no key, no prompt text, no answer."""


class ContextTooLongError(ModelError):
    """The endpoint rejected the request because the context (prompt + max_tokens) is too long."""


class ModelUnavailableError(ModelError):
    """The endpoint could not answer, after the SDK's bounded retries (at once when a retry cannot help)."""


class ModelTimeoutError(ModelUnavailableError):
    """The endpoint did not answer in time: not even starting within first_token_timeout, or past model_timeout."""


class RateLimitedError(ModelUnavailableError):
    """The endpoint said "too many requests" (HTTP 429, not an exhausted quota); `retry_after`: seconds it asked
    to wait, where it said (Retry-After / retry-after-ms)."""

    def __init__(self, message: str, retry_after: float | None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


def retry_after(response: httpx2.Response | None) -> float | None:
    """Seconds a response asks to wait: `retry-after-ms`, or `retry-after` in seconds (an HTTP date is ignored)."""
    headers = response.headers if response is not None else {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(0.0, float(headers[name]) * scale)
        except (KeyError, ValueError):
            continue
    return None


class ContentPolicyError(ModelError):
    """The endpoint's safety system refused the prompt (image generation); a different prompt may pass."""


class FeatureUnavailableError(ModelError):
    """The feature (images, speech, vision) is not configured; the message names the key to set. Nothing sent."""


@dataclass(frozen=True, slots=True)
class Completion:
    """One answer: its text, the model that produced it, the token usage (0 when not reported), and for a streamed
    answer the seconds from the request to its first text (a timing, not part of the answer: not compared)."""

    text: str
    model: str
    prompt_tokens: int
    completion_tokens: int
    first_token: float | None = field(default=None, compare=False)


def mentions(exc: openai.APIStatusError, phrase: str) -> bool:
    """Whether the error's message or body mentions `phrase` (lower case)."""
    return phrase in f"{exc.message} {exc.body}".lower()


def _is_context_error(exc: openai.APIStatusError) -> bool:
    return exc.code == "context_length_exceeded" or any(mentions(exc, phrase) for phrase in _CONTEXT_PHRASES)


def _is_content_policy(exc: openai.APIStatusError) -> bool:
    if exc.status_code != 400:
        return False
    if isinstance(exc.code, str) and exc.code.lower() in _POLICY_CODES:
        return True
    return any(mentions(exc, phrase) for phrase in _POLICY_PHRASES)


@dataclass(frozen=True, slots=True)
class ErrorMapper:
    """Turns SDK failures into safe `ModelError`s that name `endpoint` (a host, never a key)."""

    endpoint: str

    def __call__(
        self,
        exc: openai.OpenAIError,
        *,
        key: str = CHAT_MODEL_KEY,
        policy: bool = False,
        mid_stream: bool = False,
    ) -> ModelError:
        """The error for `exc`. `key` is the model setting a 404 points at; with `policy` a safety refusal is a
        ContentPolicyError; with `mid_stream` a connection failure reads as a broken-off answer."""
        where = f"model endpoint {self.endpoint}"
        if isinstance(exc, openai.APITimeoutError):
            return self._timeout(exc.__cause__)
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            if mid_stream:
                return self.broken(f"the connection failed ({cause})")
            return ModelUnavailableError(f"{where} is unreachable ({cause}); check base_url / http_proxy")
        if not isinstance(exc, openai.APIStatusError):
            return ModelUnavailableError(f"{where} failed ({type(exc).__name__})")
        status = exc.status_code
        code = f", code {exc.code}" if exc.code and _SAFE_CODE.fullmatch(exc.code) else ""
        if status in (400, 413, 422) and _is_context_error(exc):
            return ContextTooLongError(f"{where} rejected the request: context too long (HTTP {status}{code})")
        if policy and _is_content_policy(exc):
            return ContentPolicyError(f"{where} refused the prompt under its content policy (HTTP {status}{code})")
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return ModelUnavailableError(
                f"{where} refused the credentials (HTTP {status}{code}); "
                "check api_key (azure_openai_token with azure_on)"
            )
        if isinstance(exc, openai.NotFoundError):
            return ModelUnavailableError(f"{where} answered HTTP 404{code}; check {key}")
        if isinstance(exc, openai.RateLimitError):
            if exc.code == "insufficient_quota" or mentions(exc, "insufficient_quota"):
                return ModelUnavailableError(f"{where} says the account is out of quota (HTTP 429{code})")
            return RateLimitedError(f"{where} is rate limiting (HTTP 429{code})", retry_after(exc.response))
        if status >= 500:
            return ModelUnavailableError(f"{where} failed with HTTP {status}{code}")
        return ModelUnavailableError(f"{where} rejected the request (HTTP {status}{code})")

    def _timeout(self, cause: BaseException | None) -> ModelTimeoutError:
        """Which limit ran out, from the HTTP client's exception (the SDK's `APITimeoutError` chains it)."""
        where = f"model endpoint {self.endpoint}"
        if isinstance(cause, NoFirstByte):
            return ModelTimeoutError(f"{where} sent nothing for {cause.seconds:g} s (first_token_timeout)")
        if isinstance(cause, httpx2.ConnectTimeout):
            return ModelTimeoutError(f"{where} could not be connected to in time (first_token_timeout)")
        return ModelTimeoutError(f"{where} timed out (model_timeout)")

    def unavailable(self, what: str) -> ModelUnavailableError:
        """ModelUnavailableError("model endpoint HOST {what}") for an answer that cannot be used."""
        return ModelUnavailableError(f"model endpoint {self.endpoint} {what}")

    def broken(self, what: str) -> ModelUnavailableError:
        """The error of a streamed answer that stopped early."""
        return self.unavailable(f"broke off the answer: {what}")


async def chat_completion(
    client: openai.AsyncOpenAI,
    model: str,
    messages: list[ChatCompletionMessageParam],
    max_tokens: int | None,
    errors: ErrorMapper,
    *,
    key: str = CHAT_MODEL_KEY,
) -> Completion:
    """One (non-streamed) chat completion; failures mapped by `errors` (`key`: the model's config key)."""
    try:
        response = await client.chat.completions.create(
            model=model,
            messages=messages,
            max_tokens=openai.omit if max_tokens is None else max_tokens,
        )
    except openai.OpenAIError as exc:
        raise errors(exc, key=key) from None
    if not isinstance(response, ChatCompletion):  # e.g. an HTML page with status 200: not an OpenAI API
        raise errors.unavailable("answered, but not like an OpenAI-compatible API (check base_url)")
    if not response.choices:
        raise errors.unavailable("returned no choices")
    usage = response.usage
    return Completion(
        text=response.choices[0].message.content or "",
        model=response.model or model,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
    )
