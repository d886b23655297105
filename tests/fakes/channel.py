"""A second channel for tests of what an operator sees: a transport that is a list, with groups.

It comes in the way any channel does: the daemon hands it the intake (`add_routes`), and `receive` is its
transport delivering a message, from a private chat or a group. What the daemon sends it is kept in `sent`.
Pass it to `DaemonRunner(..., extra_channels=[MemoryChannel()])`; nothing in the daemon knows it.
"""

from __future__ import annotations

import itertools

from aiohttp import web

from chatgpt_wecom.daemon.channels.base import Capabilities, Channel, Inbound, Intake, MediaUnavailable, Outgoing

KEYS = itertools.count(1)


class MemoryChannel(Channel):
    """`await channel.receive("alice", "hi", chat="room-7")`; `channel.sent` holds the delivered parts."""

    name = "memory"
    namespace = "memory"
    capabilities = Capabilities(
        text_limit=2048,
        formats=frozenset({"text"}),
        streams_in_place=False,
        sends_unprompted=True,
        media_in=frozenset(),
        media_out=frozenset(),
    )

    def __init__(self, *, up: bool = True) -> None:
        super().__init__()
        self.sent: list[Outgoing] = []
        self._intake: Intake | None = None
        if up:
            self.state.went_up()

    def add_routes(self, app: web.Application, intake: Intake) -> None:
        self._intake = intake  # no routes: its "transport" is `receive`

    async def receive(self, user: str, text: str, chat: str = "", payload: dict[str, str] | None = None) -> int:
        """A message from `user` in `chat` ("" the private chat), stored by the daemon; its inbox id. `payload`:
        what the transport carried besides (e.g. `sender_nick`, as DingTalk's messages do)."""
        assert self._intake is not None, "the daemon has not taken this channel in yet"
        message = Inbound(f"m{next(KEYS)}", user, "text", text, chat=chat, payload=payload or {})
        inbox_id = await self._intake(self, message)
        assert inbox_id is not None
        return inbox_id

    async def send(self, message: Outgoing) -> str | None:
        self.sent.append(message)
        return None

    async def fetch_media(self, ref: str) -> tuple[bytes, str]:
        raise MediaUnavailable("a memory channel has no media")

    def detail(self) -> dict[str, str]:
        return {"kind": "in memory"}

    def texts_to(self, user: str) -> list[str]:
        return [m.content for m in self.sent if m.user_id == user]
