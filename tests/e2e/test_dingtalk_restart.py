"""kill -9 between the Stream ACK and the answer: the message was committed before its ACK, so the next start
answers it — once."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tests.daemon_runner import DaemonProcess
from tests.dingtalk_runner import dingtalk_settings
from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.model import FakeModel

APP = "ding-app-1"


async def test_killed_after_the_ack_it_answers_once_after_the_restart(tmp_path: Path, model: FakeModel) -> None:
    async with FakeDingTalk({APP: "ding-secret-1"}) as ding:
        settings = dingtalk_settings(tmp_path, ding, model)
        model.stall()  # the model never answers: the daemon is between the ACK and the answer
        daemon = DaemonProcess(settings, tmp_path)
        try:
            await daemon.start()
            await ding.wait_connected(APP, timeout=20)
            frame = await ding.push(ding.message("重启之后再回答", user="zoe"))
            assert ding.acks[frame]["code"] == 200
            await model.wait_for_requests(1)
            await daemon.kill()
            assert ding.delivered == []
            model.reset()
            await daemon.start()
            await ding.wait_for(lambda: ding.replies(user="zoe"), timeout=20, what="the answer after the restart")
            assert await daemon.terminate() == 0
        finally:
            await daemon.ensure_stopped()
        assert ding.texts(user="zoe") == ["echo: 重启之后再回答"]
        assert [r.last_user_text for r in model.requests] == ["重启之后再回答"]
        with sqlite3.connect(settings.database_path) as conn:
            assert conn.execute("SELECT state FROM inbox").fetchall() == [("done",)]
