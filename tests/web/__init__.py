"""Tests of the history page: signed links, the page over HTTP, and the page in a real headless browser.

Shared helpers: `signer_of` (the running daemon's LinkSigner) and `seed` (real exchanges through the pipeline).
"""

from __future__ import annotations

from chatgpt_wecom.daemon.web.links import LinkSigner
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel, ModelRequest
from tests.fakes.wecom import FakeWeCom

XSS = '<script>document.title="pwned";window.pwned=1</script><img src=x onerror="window.pwned=2">'
ANSWERS = {
    "你好": "你好！我是助手。\n  第二行保留缩进",
    "show me html": f"Here it is: {XSS} — done",
}


def signer_of(daemon: DaemonRunner) -> LinkSigner:
    """The daemon's own signer (Services.links)."""
    assert daemon.services is not None
    return daemon.services.links


async def seed(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    """alice: two answers (one full of HTML) and a failed question; bob: one answer."""

    def reply(request: ModelRequest) -> str:
        return ANSWERS.get(request.last_user_text, f"bob's answer to {request.last_user_text}")

    model.set_reply(reply)
    await daemon.ask("alice", "你好", 1)
    await wecom.wait_for_sent(1, user="alice")
    await daemon.ask("alice", "show me html", 2)
    await wecom.wait_for_sent(2, user="alice")
    model.fail(500, times=5)
    await daemon.ask("alice", "this one fails", 3)
    await wecom.wait_for_sent(3, user="alice")
    model.reset()
    model.set_reply(reply)
    await daemon.ask("bob", "bob secret question", 4)
    await wecom.wait_for_sent(1, user="bob")
