"""The HTTP client under the openai SDK, with a deadline for a streamed answer to start.

httpx's timeouts are per operation — `read` bounds every wait for more bytes — so they cannot tell "the model has
not started" from "the model paused between two pieces". A streamed request therefore gets one deadline of its own,
`first_token_timeout`: from sending the request to the first byte of the response body (waiting for a connection,
connecting, the status line and the first event, all together). It is kept inside `send`, which the SDK calls
once per attempt, and it ends in an httpx `TimeoutException` (`NoFirstByte`), so the SDK retries it like any
timeout and every retry gets the whole deadline again. A server that sends its headers at once and then nothing
(as many OpenAI-compatible servers do) is caught the same way as one that sends nothing at all.

Requests that are not streamed are left alone: their first byte is the whole answer, bounded by `model_timeout`.
For every request, connecting is bounded by the first-token deadline and every other wait by `model_timeout`.
"""

from __future__ import annotations

import asyncio
import datetime
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any

import httpx2
import openai

from chatgpt_wecom.config import Settings

__all__ = ["FirstByteClient", "NoFirstByte", "first_token_wait", "http_client", "sdk_timeout"]


def first_token_wait(settings: Settings) -> float:
    """Seconds an attempt may take to start answering: `first_token_timeout`, never more than `model_timeout`."""
    return min(settings.first_token_timeout, settings.model_timeout)


def sdk_timeout(settings: Settings) -> httpx2.Timeout:
    """The SDK's timeouts per request: connecting within the first-token wait, any other wait `model_timeout`."""
    return httpx2.Timeout(settings.model_timeout, connect=first_token_wait(settings))


def http_client(settings: Settings) -> FirstByteClient:
    """The HTTP client for the settings' model calls (through `http_proxy` when it is set)."""
    return FirstByteClient(first_byte=first_token_wait(settings), proxy=settings.http_proxy or None)


class NoFirstByte(httpx2.ReadTimeout):
    """A streamed response did not start within the first-token deadline."""

    def __init__(self, seconds: float, request: httpx2.Request) -> None:
        super().__init__(f"nothing received within {seconds:g} s", request=request)
        self.seconds = seconds


class FirstByteClient(openai.DefaultAsyncHttpxClient):
    """The SDK's default client, and a streamed response must begin within `first_byte` seconds."""

    def __init__(self, *, first_byte: float, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.first_byte = first_byte

    async def send(self, request: httpx2.Request, *, stream: bool = False, **kwargs: Any) -> httpx2.Response:
        if not stream:
            return await super().send(request, stream=False, **kwargs)
        try:
            async with asyncio.timeout(self.first_byte):
                response = await super().send(request, stream=True, **kwargs)
                try:
                    await _read_first_chunk(response)
                except BaseException:
                    await response.aclose()
                    raise
        except TimeoutError:
            raise NoFirstByte(self.first_byte, request) from None
        return response


async def _read_first_chunk(response: httpx2.Response) -> None:
    """Wait for the body's first bytes, and put them back in front of the rest."""
    stream = response.stream
    if not isinstance(stream, httpx2.AsyncByteStream):
        raise TypeError("an async client got a sync stream")
    rest = aiter(stream)
    first = await anext(rest, b"")
    response.stream = _Replay(first, rest, stream)


class _Replay(httpx2.AsyncByteStream):
    """A response body whose first chunk was already read."""

    def __init__(self, first: bytes, rest: AsyncIterator[bytes], stream: httpx2.AsyncByteStream) -> None:
        self._first, self._rest, self._stream = first, rest, stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            yield self._first
        async for chunk in self._rest:
            yield chunk

    async def aclose(self) -> None:
        if isinstance(self._rest, AsyncGenerator):
            await self._rest.aclose()
        await self._stream.aclose()

    @property
    def elapsed(self) -> datetime.timedelta | None:
        """The response's elapsed time, as the client's own stream reports it once closed."""
        elapsed = getattr(self._stream, "elapsed", None)
        return elapsed if isinstance(elapsed, datetime.timedelta) else None
