"""Demo mode: the demo server as a child process, the launcher with and without a terminal, and the stand-ins."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import openai
import pytest

from chatgpt_wecom import protocol as p
from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning
from chatgpt_wecom.daemon.channels.wecom.api import RetryPolicy, WeComClient, WeComConfigError
from chatgpt_wecom.demo import DEMO_ADMIN, DEMO_CORP_ID, ECHO_MODEL, MAX_SOCKET_PATH, demo_socket_path
from chatgpt_wecom.demo.launcher import run_demo
from chatgpt_wecom.demo.standins import ECHO_LABEL, DemoWeCom, EchoModel
from chatgpt_wecom.tui.app import make_app
from tests.daemon_runner import short_socket_path
from tests.fakes.model import FakeModel

READY = 30.0  # seconds for a demo process to answer on its socket
MODEL_KEYS = ("APIKEY", "OPENAI_API_KEY")


def child_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in MODEL_KEYS}
    return {**env, **extra}


def read(path: Path | None) -> str:
    """A log file's text ("" for none)."""
    return path.read_text(encoding="utf-8", errors="replace") if path is not None else ""


def short_data_dir() -> Path:
    """A data folder whose control socket fits in an AF_UNIX path (pytest's tmp_path can be long)."""
    return short_socket_path().parent / "demo-data"


async def start_server(data_dir: Path, log: Path, env: dict[str, str]) -> asyncio.subprocess.Process:
    with log.open("ab") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatgpt_wecom.demo.server", "--dir", str(data_dir),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=out, env=env,
        )  # fmt: skip


async def wait_ready(proc: asyncio.subprocess.Process, socket_path: Path, log: Path | None = None) -> p.Status:
    """The demo's status as soon as its control socket answers; fails if the process exits first."""
    deadline = time.monotonic() + READY
    async with ControlClient(socket_path, timeout=2.0) as client:
        while True:
            if proc.returncode is not None:
                raise AssertionError(f"demo exited with {proc.returncode}:\n{read(log)}")
            try:
                return await client.status()
            except (DaemonNotRunning, ControlError):
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"demo did not answer on {socket_path}:\n{read(log)}")
            await asyncio.sleep(0.05)


async def stop(proc: asyncio.subprocess.Process, sig: int = signal.SIGTERM) -> int:
    if proc.returncode is None:
        proc.send_signal(sig)
    return await asyncio.wait_for(proc.wait(), 40)


class Events:
    """The control API's event stream, collected in the background once it is known to be subscribed."""

    def __init__(self, client: ControlClient) -> None:
        self.client = client
        self.queue: asyncio.Queue[p.Event] = asyncio.Queue()
        self._task = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        async for event in self.client.events():
            await self.queue.put(event)

    async def subscribed(self) -> None:
        """Cause events (clearing an unused context) until one arrives: from then on nothing is missed."""
        async with asyncio.timeout(20):
            while True:
                await self.client.clear_context("demo-test-warmup")
                try:
                    async with asyncio.timeout(0.5):
                        await self.queue.get()
                        return
                except TimeoutError:
                    continue

    async def wait_for(self, predicate: Callable[[p.Event], bool], timeout: float = 30.0) -> p.Event:
        seen: list[str] = []
        try:
            async with asyncio.timeout(timeout):
                while True:
                    event = await self.queue.get()
                    seen.append(f"{event.kind} {event.data}")
                    if predicate(event):
                        return event
        except TimeoutError:
            raise AssertionError("event not seen; got:\n" + "\n".join(seen)) from None

    async def close(self) -> None:
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def ask(client: ControlClient, events: Events, user: str, text: str) -> tuple[str, int]:
    """Send `text` from the Playground; the stored answer's text once the stand-in WeCom has accepted it."""
    accepted = await client.playground(user, text)

    def mine(kind: str) -> Callable[[p.Event], bool]:
        return lambda e: e.kind == kind and e.data.get("inbox_id") == accepted.inbox_id

    stored = await events.wait_for(mine("reply.stored"))
    await events.wait_for(mine("message.done"))
    return str(stored.data["text"]), accepted.inbox_id


@pytest.fixture
async def control() -> AsyncIterator[Callable[[Path], ControlClient]]:
    clients: list[ControlClient] = []

    def make(socket_path: Path) -> ControlClient:
        clients.append(ControlClient(socket_path))
        return clients[-1]

    yield make
    for client in clients:
        await client.close()


# --- the demo server --------------------------------------------------------------------------------
async def test_demo_answers_with_the_labelled_echo_model(
    tmp_path: Path, control: Callable[[Path], ControlClient]
) -> None:
    data_dir = short_data_dir()
    log = tmp_path / "demo.log"
    # A shell set up for a real deployment must not point the demo at real WeCom or other data.
    env = child_env(
        CORP_ID="wwrealcorp", WECOM_API_BASE="https://qyapi.weixin.qq.com", DATA_DIR=str(tmp_path / "elsewhere")
    )
    proc = await start_server(data_dir, log, env)
    try:
        status = await wait_ready(proc, demo_socket_path(data_dir), log)
        assert status.wecom_app is not None and status.wecom_app.corp_id == DEMO_CORP_ID
        assert status.model == ECHO_MODEL
        assert status.wecom_app.api_base.startswith("http://127.0.0.1:")
        assert Path(status.data_dir) == data_dir.resolve()
        assert not (tmp_path / "elsewhere").exists()

        client = control(demo_socket_path(data_dir))
        events = Events(client)
        await events.subscribed()
        answer, _ = await ask(client, events, "newcomer", "你好，机器人")
        assert answer.startswith(f"{ECHO_LABEL}你说的是：你好，机器人")
        assert "APIKEY" in answer, "the echo model says how to get a real one"
        await events.close()
        assert (await client.status()).questions_today == 1
    finally:
        code = await stop(proc)
    text = log.read_text(encoding="utf-8")
    assert code == 0, text
    assert "DEMO MODE — WeCom is a built-in stand-in" in text and "echo model" in text
    assert "Traceback" not in text
    assert not demo_socket_path(data_dir).exists()


async def test_demo_history_links_can_be_tried_from_the_playground(
    tmp_path: Path, control: Callable[[Path], ControlClient]
) -> None:
    data_dir = short_data_dir()
    proc = await start_server(data_dir, tmp_path / "demo.log", child_env())
    try:
        await wait_ready(proc, demo_socket_path(data_dir), tmp_path / "demo.log")
        client = control(demo_socket_path(data_dir))
        events = Events(client)
        await events.subscribed()
        await ask(client, events, DEMO_ADMIN, "你好")
        answer, _ = await ask(client, events, DEMO_ADMIN, f"#查对话 username:{DEMO_ADMIN}")
        await events.close()
        (link,) = re.findall(r"http://127\.0\.0\.1:\d+/history/\S+?(?=[)\s]|$)", answer)
        async with aiohttp.ClientSession() as http, http.get(link) as page:
            assert page.status == 200 and "你好" in await page.text()
    finally:
        assert await stop(proc) == 0


async def test_demo_uses_the_model_configured_in_the_environment(
    tmp_path: Path, model: FakeModel, control: Callable[[Path], ControlClient]
) -> None:
    data_dir = short_data_dir()
    log = tmp_path / "demo.log"
    proc = await start_server(data_dir, log, child_env(APIKEY="sk-demo-real-key", BASE_URL=model.base_url))
    try:
        status = await wait_ready(proc, demo_socket_path(data_dir), log)
        assert status.model == "gpt-4o-mini" and status.wecom_app is not None
        assert status.wecom_app.corp_id == DEMO_CORP_ID
        client = control(demo_socket_path(data_dir))
        events = Events(client)
        await events.subscribed()
        answer, _ = await ask(client, events, "newcomer", "hello")
        await events.close()
    finally:
        code = await stop(proc)
    assert answer == "echo: hello", "the answer comes from the configured model, not the demo's echo model"
    assert model.requests[-1].headers["authorization"] == "Bearer sk-demo-real-key"
    assert code == 0
    assert "sk-demo-real-key" not in log.read_text(encoding="utf-8")


# --- the launcher --------------------------------------------------------------------------------------
async def test_launcher_without_a_terminal_runs_in_the_foreground(tmp_path: Path) -> None:
    data_dir = short_data_dir()
    out_path = tmp_path / "launcher.out"
    with out_path.open("wb") as out:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatgpt_wecom", "demo", "--data-dir", str(data_dir),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT, env=child_env(),
        )  # fmt: skip
    try:
        status = await wait_ready(launcher, demo_socket_path(data_dir), out_path)
        assert status.wecom_app is not None and status.wecom_app.corp_id == DEMO_CORP_ID
        await wait_for_text(out_path, "No terminal here, so no TUI")

        second = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatgpt_wecom", "demo", "--data-dir", str(data_dir),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
            env=child_env(),
        )  # fmt: skip
        second_out, _ = await asyncio.wait_for(second.communicate(), 30)
        assert second.returncode == 1
        assert b"a demo is already running" in second_out
    finally:
        code = await stop(launcher, signal.SIGINT)  # Ctrl-C
    text = out_path.read_text(encoding="utf-8")
    assert code == 0, text
    assert "DEMO MODE — model: the built-in echo model" in text
    assert f"chatgpt-wecom tui --socket {demo_socket_path(data_dir)} --screen playground" in text
    assert "Demo stopped. To set it up for real: cp config.example.yml config.yml" in text
    assert "Traceback" not in text
    assert not demo_socket_path(data_dir).exists(), "the launcher stops the daemon before it exits"


async def test_a_killed_launcher_leaves_no_daemon_behind(tmp_path: Path) -> None:
    data_dir = short_data_dir()
    out_path = tmp_path / "launcher.out"
    with out_path.open("wb") as out:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "chatgpt_wecom", "demo", "--data-dir", str(data_dir),
            stdin=asyncio.subprocess.DEVNULL, stdout=out, stderr=asyncio.subprocess.STDOUT, env=child_env(),
        )  # fmt: skip
    socket_path = demo_socket_path(data_dir)
    try:
        await wait_ready(launcher, socket_path, out_path)
    finally:
        await stop(launcher, signal.SIGKILL)
    deadline = time.monotonic() + 30
    while socket_path.exists():  # the daemon sees its stdin close and stops in order, removing the socket
        assert time.monotonic() < deadline, "the demo daemon outlived its launcher"
        await asyncio.sleep(0.05)
    await wait_for_text(out_path, "the launcher went away; stopping")


async def wait_for_text(path: Path, text: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while text not in read(path):
        assert time.monotonic() < deadline, f"{text!r} not in:\n{read(path)}"
        await asyncio.sleep(0.05)


def test_launcher_opens_the_tui_on_the_playground(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The launcher starts the daemon, hands the socket to the UI and stops the daemon when the UI returns. The
    UI here is the real TUI, run headless: a newcomer's first message gets the echo model's answer."""
    data_dir = short_data_dir()
    seen: list[tuple[Path, str, str]] = []

    def headless_tui(socket_path: Path) -> int:
        seen.append((socket_path, *asyncio.run(talk_in_the_playground(socket_path))))
        return 0

    monkeypatch.delenv("APIKEY", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)

    assert run_demo(data_dir, interactive=True, ui=headless_tui) == 0

    [(socket_path, page, transcript)] = seen
    assert socket_path == demo_socket_path(data_dir)
    assert page == "playground"
    assert "演示模式" in transcript  # the echo model labels itself
    assert not socket_path.exists(), "the daemon is stopped when the TUI closes"
    log = (data_dir / "demo.log").read_text(encoding="utf-8")
    assert "DEMO MODE" in log and "stopped" in log
    out = capsys.readouterr().out
    assert f"(Ctrl+Q quits); the log is in {data_dir.resolve() / 'demo.log'}" in out
    assert "Demo stopped." in out


async def talk_in_the_playground(socket_path: Path) -> tuple[str, str]:
    """Open the TUI as the demo does, type a message on the Playground, return (page, transcript text)."""
    from textual.widgets import Static, TextArea

    from chatgpt_wecom.tui.screens.playground import Turn

    app = make_app(socket_path, screen="playground", title="demo", demo=True)
    async with app.run_test(size=(120, 40)) as pilot:
        page = app.current_mode
        banner = str(app.screen.query_one("#play-banner", Static).content)
        assert "built-in WeCom stand-in, nobody real" in banner and "SENT" not in banner
        for _ in range(200):  # bounded: connect
            if app.connection.connected:
                break
            await pilot.pause(0.05)
        app.screen.query_one("#play-text", TextArea).load_text("你好")
        await pilot.press("ctrl+s")
        for _ in range(200):  # bounded: the answer arrives on the event stream
            transcript = "\n".join(turn.answer or "" for turn in app.screen.query(Turn))
            if "演示模式" in transcript:
                break
            await pilot.pause(0.05)
        return page, transcript


def test_launcher_exits_non_zero_when_the_tui_crashes(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The launcher's own UI (the real TUI, run headless): it says it is the demo, and its crash is the exit code."""
    from textual.app import App
    from textual.pilot import Pilot
    from textual.widgets import Static

    from chatgpt_wecom.tui import OperatorApp

    data_dir = short_data_dir()
    seen: list[tuple[str, str, str]] = []

    async def crash(pilot: Pilot[object]) -> None:
        app = pilot.app
        for _ in range(200):  # bounded: the Playground is shown
            if app.current_mode == "playground":
                break
            await pilot.pause(0.05)
        seen.append((app.current_mode, app.title, str(app.screen.query_one("#play-banner", Static).content)))
        app.call_later(boom)
        await pilot.pause(0.5)

    monkeypatch.setattr(OperatorApp, "run", lambda app: App.run(app, headless=True, auto_pilot=crash))

    assert run_demo(data_dir, interactive=True) == 1

    [(page, title, banner)] = seen
    assert page == "playground" and "DEMO" in title
    assert "built-in WeCom stand-in, nobody real" in banner
    out = capsys.readouterr().out
    assert "the terminal UI failed (exit code 1); stopping the demo daemon." in out
    assert "Demo stopped." not in out
    assert not demo_socket_path(data_dir).exists(), "the daemon is stopped after the crash too"


def boom() -> None:
    raise RuntimeError("the UI broke")


def loaded_by(module: str) -> set[str]:
    """The modules a fresh interpreter has loaded after importing `module`."""
    code = f"import sys, {module}; print('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60)
    return set(out.stdout.split())


def test_the_launcher_never_loads_the_daemon_and_the_server_never_loads_textual() -> None:
    assert not {m for m in loaded_by("chatgpt_wecom.demo.launcher") if m.startswith("chatgpt_wecom.daemon")}
    assert not {m for m in loaded_by("chatgpt_wecom.demo.server") if m.split(".")[0] == "textual"}
    assert "chatgpt_wecom.daemon.main" in loaded_by("chatgpt_wecom.demo.server"), "the check itself works"


def test_a_long_data_dir_gets_a_short_socket(tmp_path: Path) -> None:
    short = tmp_path / "d"
    assert demo_socket_path(short) == short.resolve() / "control.sock"
    deep = tmp_path / ("x" * 60) / ("y" * 60)
    path = demo_socket_path(deep)
    assert len(os.fsencode(path)) <= MAX_SOCKET_PATH
    assert path == demo_socket_path(deep) and path != demo_socket_path(tmp_path / ("x" * 60) / ("z" * 60))


# --- the stand-ins -------------------------------------------------------------------------------------
async def test_echo_model_speaks_openai_whole_and_streamed() -> None:
    async with EchoModel() as echo:
        client = openai.AsyncOpenAI(base_url=f"{echo.base_url}/v1", api_key="demo", max_retries=0)
        try:
            whole = await client.chat.completions.create(
                model=ECHO_MODEL, messages=[{"role": "system", "content": "x"}, {"role": "user", "content": "一二三"}]
            )
            assert (whole.choices[0].message.content or "").startswith(f"{ECHO_LABEL}你说的是：一二三")
            assert whole.usage is not None and whole.usage.completion_tokens > 0
            stream = await client.chat.completions.create(
                model=ECHO_MODEL,
                messages=[{"role": "user", "content": "streamed"}],
                stream=True,
                stream_options={"include_usage": True},
            )
            pieces, usage = [], None
            async for chunk in stream:
                pieces += [c.delta.content or "" for c in chunk.choices]
                usage = chunk.usage or usage
            assert "".join(pieces) == (whole.choices[0].message.content or "").replace("一二三", "streamed")
            assert usage is not None and usage.total_tokens > 0
        finally:
            await client.close()


async def test_demo_wecom_speaks_the_wecom_api() -> None:
    wecom = DemoWeCom(corp_id=DEMO_CORP_ID, agent_id=1000002, secret="demo-secret")
    async with wecom, aiohttp.ClientSession() as session:
        retry = RetryPolicy(attempts=1, timeout=5.0)
        client = WeComClient(
            session, api_base=wecom.base_url, corp_id=DEMO_CORP_ID, agent_id=1000002, secret="demo-secret"
        )
        assert await client.send_message("alice", "**hi**", markdown=True)
        assert list(wecom.sent)[-1]["markdown"] == {"content": "**hi**"}
        media_id = await client.upload_media("image", b"\x89PNG....", "a.png", "image/png")
        assert await client.download_media(media_id) == (b"\x89PNG....", "image/png")

        wrong = WeComClient(
            session, api_base=wecom.base_url, corp_id=DEMO_CORP_ID, agent_id=1000002, secret="nope", retry=retry
        )
        with pytest.raises(WeComConfigError) as caught:
            await wrong.token()
        assert caught.value.errcode == 40001
