"""One answer growing in place on the wire: a first frame at once, then the newest cumulative text at most every
`interval` seconds, one frame at a time (each waits for its ack), superseded texts skipped.

The finish frame is not sent here: it is part 0 of the stored answer, which the channel delivers (channel.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from chatgpt_wecom.daemon.channels.base import LiveReply
from chatgpt_wecom.daemon.channels.wecom_bot import protocol
from chatgpt_wecom.daemon.channels.wecom_bot.connection import AckTimeout, CommandFailed, Connection, NotConnected

log = logging.getLogger(__name__)

THINKING = "思考中…"  # the first frame: the bubble appears at once
LIFETIME = 330.0  # seconds a stream is updated; the server refuses frames 6 min after the first (846608)
CONTINUED = (
    "（回答较长，完整内容见下一条消息）"  # ends a stream that outlived LIFETIME: the answer follows as a message
)


def stream_id(message_id: str) -> str:
    """The stream of the answer to `message_id`: the same after a restart."""
    return f"s_{message_id}"


class LiveStream(LiveReply):
    """One answer growing in place: the newest text, sent when the previous frame is acknowledged and
    `interval` has passed. A stream still open `LIFETIME` seconds after its first frame (a slow model start and a
    5-minute answer) is finished here with a note, and `ended` is set: the answer then goes as a message."""

    def __init__(self, conn: Connection, req_id: str, message_id: str, interval: float) -> None:
        self.conn, self.req_id, self.message_id = conn, req_id, message_id
        self.id = stream_id(message_id)
        self._interval = interval
        self._latest = ""
        self._sent = ""
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.frames = 0  # acknowledged
        self.refused: CommandFailed | None = None  # the server will take no more frames (846605 / 846608)
        self.lost = False  # the connection it was opened on closed
        self.ended = False  # finished here, before its part 0 came (it outlived LIFETIME)
        self._deadline = time.monotonic() + LIFETIME
        self._task = asyncio.create_task(self._run(), name=f"wecom_bot:stream:{message_id}")

    def show(self, text: str) -> None:
        if not self._closing.is_set():
            self._latest = protocol.cap(text)
            self._wake.set()

    async def close(self) -> None:
        self._closing.set()
        self._wake.set()
        await asyncio.gather(self._task, return_exceptions=True)

    def cancel(self) -> None:
        self._task.cancel()

    @property
    def usable(self) -> bool:
        return self.refused is None and not self.lost and not self.ended

    async def _run(self) -> None:
        await self._frame(THINKING)
        while self.usable:
            try:
                await asyncio.wait_for(self._wake.wait(), max(0.0, self._deadline - time.monotonic()))
            except TimeoutError:
                await self._end()
                return
            if self._closing.is_set():
                return  # the finish frame follows as part 0: an update now would only delay it
            self._wake.clear()
            text = self._latest
            if text.strip() and text != self._sent:
                await self._frame(text)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), self._interval)

    async def _frame(self, text: str) -> None:
        first = self.frames == 0
        frame = protocol.stream(
            self.req_id, self.id, text, finish=False, feedback_id=self.message_id if first else None
        )
        try:
            await self.conn.request(frame)
        except CommandFailed as exc:
            if exc.errcode in protocol.STREAM_GONE:
                self.refused = exc
            log.warning("wecom_bot: stream frame of %s refused: %s", self.message_id, exc)
            return
        except AckTimeout:
            return  # its state is unknown: the next cumulative frame repairs it
        except NotConnected:
            self.lost = True
            return
        self._sent = text
        self.frames += 1

    async def _end(self) -> None:
        """Finish the bubble before the server stops taking frames, saying that the answer follows."""
        shown = self._latest if self._latest.strip() else ""
        text = protocol.cap(f"{shown}\n\n{CONTINUED}" if shown else CONTINUED)
        try:
            await self.conn.request(protocol.stream(self.req_id, self.id, text, finish=True))
        except (CommandFailed, AckTimeout, NotConnected) as exc:
            log.info("wecom_bot: the stream of %s could not be ended (%s)", self.message_id, exc)
        self.ended = True
