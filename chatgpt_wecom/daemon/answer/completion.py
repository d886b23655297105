"""One call to the model, and the part of its answer still to send — censored, and streamed in parts where it can.

Streaming: the text is censored as it arrives (`StreamCensor`: a word split across two pieces is caught too), then
the splitter cuts the censored text into parts, each emitted as soon as it is released — so a cut never separates
a word from its censoring and every part fits the limit as sent. The words are read from the live policy at every
step: an admin may change them meanwhile. A stream that fails after parts went out raises `CutOff` with the rest.

When the provider rate-limits and the answer has to wait its turn (`model/pace.py`), the user is told once: in the
growing message where the channel has one, else — for a wait of `BUSY_NOTE_AFTER` seconds or more, on a channel
that sends parts — as a short first part.
"""

from __future__ import annotations

import asyncio

from chatgpt_wecom.daemon.answer.turn import Emit, InPlace
from chatgpt_wecom.daemon.chat import replies
from chatgpt_wecom.daemon.chat.stream_censor import StreamCensor
from chatgpt_wecom.daemon.live_policy import LivePolicy
from chatgpt_wecom.daemon.media.images import read_image
from chatgpt_wecom.daemon.model.client import Completion, ModelClient, ModelError, ModelUnavailableError, Waiting
from chatgpt_wecom.daemon.pipeline.progressive import ProgressiveSplitter

STREAM_LIMIT = 600.0  # seconds one streamed answer may take in all
BUSY_NOTE_AFTER = 10.0  # a wait for a rate-limited provider this long is worth a message of its own


class CutOff(Exception):
    """The model stopped mid-stream after some parts were already sent; `pending` is the rest, censored."""

    def __init__(self, error: ModelError, partial: str, pending: str) -> None:
        super().__init__(str(error))
        self.error, self.partial, self.pending = error, partial, pending


class Completer:
    def __init__(self, model: ModelClient, policy: LivePolicy) -> None:
        self._model = model
        self._policy = policy

    async def complete(
        self,
        messages: list[dict[str, str]],
        emit: Emit | None,
        image: str | None,
        *,
        max_tokens: int,
        stream: bool,
        limit: int,
        in_place: InPlace | None = None,
    ) -> tuple[Completion, str]:
        """The model's answer and the part of it still to send, censored. With `image`, the vision model answers
        (never streamed); with `emit` and `stream`, finished parts are emitted while the model writes (and with
        `in_place`, the message being written is shown as it grows)."""
        waiting = _busy_note(emit, in_place)
        if image is not None:
            data, content_type = await read_image(image)
            completion = await self._model.describe(
                messages, data, content_type, max_tokens=max_tokens, waiting=waiting
            )
            return completion, self._policy.words.censor(completion.text.strip())
        if emit is None or not stream:
            completion = await self._model.complete(messages, max_tokens=max_tokens, waiting=waiting)
            return completion, self._policy.words.censor(completion.text.strip())
        if in_place is None:
            splitter = ProgressiveSplitter(limit)
        else:
            splitter = ProgressiveSplitter(limit, in_place=True, max_age=in_place.max_age)
        censor = StreamCensor()
        received: list[str] = []
        try:
            # first_token_timeout bounds the wait for the answer to start and model_timeout each later wait for
            # more text (both in the model client); this bounds the whole answer (a slot is held meanwhile).
            async with (
                asyncio.timeout(STREAM_LIMIT),
                self._model.stream(messages, max_tokens=max_tokens, waiting=waiting) as answer,
            ):
                async for delta in answer:
                    received.append(delta)
                    for part in splitter.feed(censor.feed(delta, self._policy.words)):
                        await emit(part)
                    if in_place is not None and splitter.pending.strip():
                        in_place.show(splitter.pending.strip())
                completion = answer.completion
        except TimeoutError:
            exc = ModelUnavailableError(f"model endpoint {self._model.endpoint} streamed for over {STREAM_LIMIT:g} s")
            if splitter.parts_sent == 0:
                raise exc from None
            raise CutOff(exc, "".join(received), self._rest(splitter, censor)) from None
        except ModelError as exc:
            if splitter.parts_sent == 0:
                raise
            raise CutOff(exc, "".join(received), self._rest(splitter, censor)) from None
        return completion, self._rest(splitter, censor).strip()

    def _rest(self, splitter: ProgressiveSplitter, censor: StreamCensor) -> str:
        """What a stream left unsent, censored: the splitter's pending text and the censor's held-back tail."""
        return splitter.pending + censor.finish(self._policy.words)


def _busy_note(emit: Emit | None, in_place: InPlace | None) -> Waiting:
    """Tells the user, once, that their answer waits for a rate-limited provider."""
    told = False

    async def waiting(seconds: float) -> None:
        nonlocal told
        if told:
            return
        if in_place is not None:
            in_place.show(replies.provider_busy(seconds))
        elif emit is not None and seconds >= BUSY_NOTE_AFTER:
            await emit(replies.provider_busy(seconds))
        else:
            return
        told = True

    return waiting
