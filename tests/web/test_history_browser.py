"""The history page in a real headless Chromium (Debian's), driven by Playwright's async API.

Skipped — with the reason — only where no Chromium is installed or the playwright package is missing; `make test`
installs Chromium where it can (`make browser`). Playwright's own browser download is never used.
"""

from __future__ import annotations

import asyncio
import importlib.util
import shutil
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from chatgpt_wecom.daemon.web.links import LinkSigner, history_url
from tests.daemon_runner import DaemonRunner
from tests.fakes.model import FakeModel
from tests.fakes.wecom import FakeWeCom
from tests.web import ANSWERS, XSS, seed, signer_of

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium")) if p and Path(p).exists()), None)
# The flags this machine needs: no sandbox as root, and no background traffic to a closed network.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if CHROMIUM is None:
    pytest.skip("no Chromium installed (make browser installs Debian's chromium)", allow_module_level=True)
if importlib.util.find_spec("playwright") is None:
    pytest.skip("the playwright package is not installed (pip install -e '.[test]')", allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright  # noqa: E402


@pytest.fixture
async def browser(tmp_path: Path) -> AsyncIterator[Browser]:
    assert CHROMIUM is not None
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            yield browser
        finally:
            await browser.close()


async def _open(browser: Browser, url: str) -> tuple[Page, int, list[str]]:
    page = await (await browser.new_context(accept_downloads=True)).new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type in ("error", "warning") else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    response = await page.goto(url)
    assert response is not None
    return page, response.status, problems


async def test_the_page_in_chromium(browser: Browser, daemon: DaemonRunner, wecom: FakeWeCom, model: FakeModel) -> None:
    await seed(daemon, wecom, model)
    page, status, problems = await _open(browser, history_url(daemon.url, signer_of(daemon).token("alice")))
    assert status == 200
    assert await page.title() == "对话记录 · alice"
    assert await page.evaluate("window.pwned") is None  # the <script> and onerror in the answer never ran
    text = await page.inner_text("main")
    assert "你好" in text and "第二行保留缩进" in text and "this one fails" in text
    assert XSS in text  # shown as text, exactly as the model wrote it
    first_answer = page.locator("article .answer .text").first
    assert await first_answer.inner_text() == ANSWERS["你好"]  # newline and indent preserved
    assert await first_answer.evaluate("e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    assert await page.locator("article").count() == 3
    assert "bob" not in text
    assert problems == []  # no blocked resource, no CSP violation, no error

    async with page.expect_download() as info:
        await page.get_by_text("下载 Markdown").click()
    download = await info.value
    assert download.suggested_filename == "history.md"
    path = await download.path()
    markdown = await asyncio.to_thread(Path(path).read_text, encoding="utf-8")
    assert markdown.startswith("# Conversation history of alice")
    assert ANSWERS["你好"] in markdown and XSS in markdown

    async with page.expect_download() as info:
        await page.get_by_text("下载 JSON").click()
    assert (await info.value).suggested_filename == "history.json"


async def test_a_forged_link_in_chromium(browser: Browser, daemon: DaemonRunner) -> None:
    forged = LinkSigner(b"f" * 32).token("alice")
    page, status, _ = await _open(browser, history_url(daemon.url, forged))
    assert status == 403
    text = await page.inner_text("body")
    assert "This link is invalid or has expired." in text and "alice" not in text
