"""The history page over real HTTP from the in-process daemon: content, downloads, refusals, headers."""

from __future__ import annotations

import html
import json
import logging

import pytest

from chatgpt_wecom.daemon.web.history_page import REFUSAL
from chatgpt_wecom.daemon.web.links import LinkSigner, history_url
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.web import ANSWERS, XSS, seed, signer_of

SECURITY = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
}


def _assert_secure(headers: object) -> None:
    assert isinstance(headers, dict)
    for name, value in SECURITY.items():
        assert headers.get(name) == value, name
    csp = headers.get("Content-Security-Policy", "")
    assert csp.startswith("default-src 'none'; style-src 'unsafe-inline'; img-src data:"), csp
    assert "script-src" not in csp


async def _get(daemon: DaemonRunner, url: str) -> tuple[int, dict[str, str], str]:
    async with daemon.http.get(url, allow_redirects=False) as resp:
        return resp.status, dict(resp.headers), await resp.text()


async def test_page_shows_the_conversation_escaped(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    await seed(daemon, wecom, model)
    url = history_url(daemon.url, signer_of(daemon).token("alice"))
    status, headers, body = await _get(daemon, url)
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    _assert_secure(headers)
    assert "<title>对话记录 · alice</title>" in body
    assert "你好" in body and html.escape(ANSWERS["你好"]) in body  # newline and indent kept, shown pre-wrap
    assert "white-space: pre-wrap" in body
    assert html.escape(XSS) in body and "<script" not in body and "<img" not in body
    assert "this one fails" in body and 'class="text error"' in body
    assert "bob" not in body  # one user per link
    assert "时间为 Asia/Shanghai" in body and "此链接将于" in body
    assert "http://" not in body and "https://" not in body  # no external resources
    token = url.rsplit("/", 1)[1]
    assert f'href="{token}/history.md"' in body and f'href="{token}/history.json"' in body


async def test_downloads(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    await seed(daemon, wecom, model)
    url = history_url(daemon.url, signer_of(daemon).token("alice"))
    status, headers, md = await _get(daemon, f"{url}/history.md")
    assert status == 200
    assert headers["Content-Type"] == "text/markdown; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="history.md"'
    _assert_secure(headers)
    assert md.startswith("# Conversation history of alice")
    assert ANSWERS["你好"] in md and XSS in md and "this one fails" in md and "bob" not in md

    status, headers, raw = await _get(daemon, f"{url}/history.json")
    assert status == 200
    assert headers["Content-Type"] == "application/json; charset=utf-8"
    assert headers["Content-Disposition"] == 'attachment; filename="history.json"'
    _assert_secure(headers)
    items = json.loads(raw)
    assert [x["question"] for x in items] == ["你好", "show me html", "this one fails"]
    assert [x["answer"] for x in items][:2] == [ANSWERS["你好"], ANSWERS["show me html"]]
    assert items[2]["answer"] is None and items[2]["error"]
    assert {x["user_id"] for x in items} == {"alice"}
    assert set(items[0]) == {"id", "user_id", "mode", "question", "answer", "error", "model",
                             "prompt_tokens", "completion_tokens", "asked_at", "answered_at",
                             "namespace", "chat", "feedback", "inbox_id"}  # fmt: skip
    assert (items[0]["namespace"], items[0]["chat"]) == ("wecom", "alice")  # a private chat with the app


async def test_a_user_with_no_history_gets_an_empty_page(daemon: DaemonRunner) -> None:
    status, _, body = await _get(daemon, history_url(daemon.url, signer_of(daemon).token("nobody")))
    assert status == 200 and "No conversation yet" in body
    status, _, raw = await _get(daemon, history_url(daemon.url, signer_of(daemon).token("nobody")) + "/history.json")
    assert status == 200 and json.loads(raw) == []


def _bad_tokens(daemon: DaemonRunner) -> dict[str, str]:
    signer = signer_of(daemon)
    good = signer.token("alice")
    payload, mac = good.split(".")
    bob_payload = signer.token("bob").split(".")[0]
    expired = LinkSigner(signer._key, clock=lambda: 0.0).token("alice", ttl=60)
    return {
        "forged": LinkSigner(b"f" * 32).token("alice"),
        "expired": expired,
        "other user, alice's mac": f"{bob_payload}.{mac}",
        "altered mac": f"{payload}.{mac[:-2]}AA" if not mac.endswith("AA") else f"{payload}.{mac[:-2]}BB",
        "garbage": "not-a-token",
        "dots": "a.b.c",
    }


@pytest.mark.parametrize("suffix", ["", "/history.md", "/history.json"])
async def test_bad_links_get_403_and_reveal_nothing(
    daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel, suffix: str, caplog: pytest.LogCaptureFixture
) -> None:
    await seed(daemon, wecom, model)
    for what, token in _bad_tokens(daemon).items():
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="chatgpt_wecom.daemon.web.history_page"):
            status, headers, body = await _get(daemon, history_url(daemon.url, token) + suffix)
        assert status == 403, what
        assert body == REFUSAL, what
        assert "Content-Disposition" not in headers
        _assert_secure(headers)
        assert [r.levelname for r in caplog.records] == ["WARNING"], what
        assert token not in caplog.text, what


@pytest.mark.parametrize("path", ["/history", "/history/", "/history//history.md", "/history/x/"])
async def test_no_listing(daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel, path: str) -> None:
    await seed(daemon, wecom, model)
    status, _, body = await _get(daemon, daemon.url + path)
    assert status in (400, 403, 404)
    assert "alice" not in body and "bob" not in body and "你好" not in body


async def test_the_key_survives_a_restart(daemon: DaemonRunner) -> None:
    token = signer_of(daemon).token("alice")
    restarted = LinkSigner.from_data_dir(daemon.settings.data_dir)
    assert restarted.verify(token) == "alice"
