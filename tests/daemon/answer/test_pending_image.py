"""A picture kept for the next question is stored with its reply, in the worker's one transaction.

Answering writes nothing: a message answered but not yet stored (the daemon died in between, so it is answered
again after the restart) leaves no picture kept for a reply that was never sent, and does not forget a picture
for an answer that was never stored. The real container over loopback fakes; the gap between answering and
storing is the one between `Responder.respond` and `Worker.process`.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.services import Services
from chatgpt_wecom.daemon.store.conversations import ChatKey
from chatgpt_wecom.daemon.store.inbox import InboxRow, NewMessage
from tests.daemon_runner import FAST, make_settings
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom

PNG = (Path(__file__).parents[2] / "data" / "tiny.png").read_bytes()
KEYS = itertools.count()
U1 = ChatKey("wecom", "u1", "u1")  # u1 in their private chat with the app


async def received(services: Services, msg_type: str, content: str = "", **payload: str) -> InboxRow:
    """A message from u1, accepted into the inbox as a channel would."""
    message = NewMessage(f"test:{next(KEYS)}", "u1", msg_type, content, time.time(), payload)
    inbox_id = await services.inbox.add(message)
    assert inbox_id is not None
    row = await services.inbox.get(inbox_id)
    assert row is not None
    return row


def vision_settings(tmp_path: Path, wecom: FakeWeCom, model: FakeModel) -> Settings:
    wecom.add_media("pic-1", PNG, "image/png")
    return make_settings(tmp_path, wecom, model, vision_model="gpt-4o")


async def test_a_picture_is_kept_only_once_its_reply_is_stored(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    async with Services(vision_settings(tmp_path, wecom, model), FAST) as services:
        picture = await received(services, "image", media_id="pic-1")
        outcome = await services.responder.respond(picture)
        assert isinstance(outcome.pending_image, str)
        assert await asyncio.to_thread(Path(outcome.pending_image).read_bytes) == PNG  # fetched and on disk
        # answered, not stored: nothing of it is in the database
        assert await services.conversations.pending_image(U1, since=0) is None
        assert (await services.conversations.user_state(U1)).last_active_at is None
        await services.worker.process(picture.id)
        assert await services.conversations.pending_image(U1, since=0) == outcome.pending_image
        assert "收到图片" in wecom.texts_to("u1")[-1]


async def test_a_picture_asked_about_is_let_go_with_the_stored_answer(
    tmp_path: Path, wecom: FakeWeCom, model: FakeModel
) -> None:
    async with Services(vision_settings(tmp_path, wecom, model), FAST) as services:
        picture = await received(services, "image", media_id="pic-1")
        await services.worker.process(picture.id)
        kept = await services.conversations.pending_image(U1, since=0)
        assert kept is not None
        question = await received(services, "text", "图里有什么")
        outcome = await services.responder.respond(question)
        assert outcome.pending_image is None and outcome.exchange is not None and outcome.exchange.error is None
        # answered, not stored: the picture is still kept, so answering again after a restart still sees it
        assert await services.conversations.pending_image(U1, since=0) == kept
        await services.worker.process(question.id)
        assert await services.conversations.pending_image(U1, since=0) is None
    chats = [r for r in model.requests if r.kind == "chat"]
    assert [r.json["model"] for r in chats] == ["gpt-4o", "gpt-4o"]  # both answers saw the picture
