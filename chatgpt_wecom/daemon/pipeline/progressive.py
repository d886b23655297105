"""Decides when a streamed answer has a part ready to send. Pure: text and time in, parts out.

- The first finished paragraph goes out at once, so the user sees the start of a long answer in about the time
  of its first paragraph.
- After that, a part goes out when a paragraph is finished and at least `min_interval` seconds have passed
  since the last one — a fast stream is merged into fewer, larger parts (WeCom lets an app send one member
  30 messages a minute) — or when the text waiting reaches the byte limit.
- A paragraph boundary inside an open code fence is not a boundary: code blocks are not cut mid-way unless
  they alone exceed the limit (then `split_message` closes and reopens the fence).
- `finish()` returns what is left, split to the limit.
- For a channel that shows one message growing in place (`in_place`), no paragraph goes early: a part ends when
  the text reaches the limit, or when the message has grown for `max_age` seconds (then at the last paragraph
  break, if there is one) — so the in-place message is finished before the platform stops taking updates.

It measures and cuts the text it is given, as given: the responder feeds it text already censored
(`chat/stream_censor.py`), so a cut cannot separate a sensitive word from its censoring and the limit holds for the
parts as sent.
"""

from __future__ import annotations

import re
import time
from bisect import bisect_left
from collections.abc import Callable

from chatgpt_wecom.daemon.pipeline.split import split_message

_FENCE_LINE = re.compile(r"^ {0,3}(```|~~~)", re.MULTILINE)
_PARAGRAPH_BREAK = re.compile(r"\n[ \t]*\n")


def _last_boundary(text: str) -> int:
    """End of the last blank-line paragraph break outside a code fence (0: none)."""
    fences = [m.start() for m in _FENCE_LINE.finditer(text)]
    best = 0
    for m in _PARAGRAPH_BREAK.finditer(text):
        if bisect_left(fences, m.end()) % 2 == 0:  # an even number of fence lines before it: not in code
            best = m.end()
    return best


class ProgressiveSplitter:
    def __init__(
        self,
        limit: int = 2048,
        min_interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
        *,
        in_place: bool = False,
        max_age: float = 0.0,
    ) -> None:
        self._limit = limit
        self._min_interval = min_interval
        self._clock = clock
        self._in_place = in_place
        self._max_age = max_age
        self._buffer = ""
        self._last_sent: float | None = None
        self._started: float | None = None  # when the message being written began (in place)
        self.parts_sent = 0

    def feed(self, delta: str) -> list[str]:
        """Add streamed text; returns the parts ready to send now (often none)."""
        self._buffer += delta
        if self._started is None:
            self._started = self._clock()
        ready: list[str] = []
        # Too much waiting: send all but the last piece (which may still grow into a paragraph).
        if len(self._buffer.encode("utf-8")) > self._limit:
            pieces = split_message(self._buffer, self._limit)
            ready, self._buffer = pieces[:-1], pieces[-1]
        if self._in_place:
            return self._sent([p for p in ready + self._aged() if p.strip()])
        due = self._last_sent is None or self._clock() - self._last_sent >= self._min_interval
        if due and (cut := _last_boundary(self._buffer)):
            head, self._buffer = self._buffer[:cut], self._buffer[cut:]
            ready += split_message(head.rstrip(), self._limit)
        return self._sent([p for p in ready if p.strip()])

    def _aged(self) -> list[str]:
        """The in-place message that has grown for `max_age`, ended at its last paragraph break (or whole)."""
        if self._max_age <= 0 or self._started is None or self._clock() - self._started < self._max_age:
            return []
        cut = _last_boundary(self._buffer) or len(self._buffer)
        head, self._buffer = self._buffer[:cut], self._buffer[cut:]
        return split_message(head.rstrip(), self._limit) if head.strip() else []

    def finish(self) -> list[str]:
        """The rest of the answer, split to the limit."""
        rest, self._buffer = self._buffer, ""
        return self._sent(split_message(rest, self._limit))

    @property
    def pending(self) -> str:
        """Text received and not yet handed out."""
        return self._buffer

    def _sent(self, parts: list[str]) -> list[str]:
        if parts:
            self._last_sent = self._started = self._clock()
            self.parts_sent += len(parts)
        return parts
