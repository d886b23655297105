"""`ctl status` for a deployment with only the AI bot: no WeCom app lines, the feedback counted."""

from __future__ import annotations

from chatgpt_wecom import ctl
from chatgpt_wecom import protocol as p


def status(**changes: object) -> p.Status:
    values: dict[str, object] = dict(
        version="1", started_at=0.0, uptime=60.0, paused=False, pause_notice="", model="m", model_endpoint="e",
        queue_depth=0,
        open_messages=0, users_today=0, questions_today=0, messages_today=0, secrets={}, last_errors=[],
        config_path=None, data_dir="/d", control_socket="/s",
        channels=[p.ChannelStatus(name="wecom_bot", namespace="wecom", up=False, reconnects=3,
                                  last_error="kicked: another instance subscribed with this bot id",
                                  detail={"bot_id": "aib1", "kicked": True, "last_ping_rtt_ms": 12.5})],
    )  # fmt: skip
    values.update(changes)
    return p.Status.model_validate(values)


def test_only_the_ai_bot() -> None:
    text = "\n".join(ctl._status_lines(status(feedback={"good": 3, "bad": 1})))
    assert "token" not in text and "corp" not in text
    assert [line.split() for line in text.splitlines() if line.startswith("feedback")] == [
        ["feedback", "3", "good,", "1", "bad"]
    ]
    assert "DOWN · 3 reconnects · last error: kicked: another instance" in text
    assert "bot_id aib1 · kicked true · last_ping_rtt_ms 12.5" in text


def test_no_feedback_no_line() -> None:
    assert "feedback" not in "\n".join(ctl._status_lines(status(feedback={"good": 0, "bad": 0})))
