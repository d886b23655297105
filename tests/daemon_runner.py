"""Runs the real daemon (`serve()`) in-process for end-to-end tests, and talks to it over HTTP."""

from __future__ import annotations

import asyncio
import atexit
import itertools
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import aiohttp
import yaml
from pydantic import SecretStr

from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.channels.base import Channel
from chatgpt_wecom.daemon.channels.wecom.api import RetryPolicy
from chatgpt_wecom.daemon.main import serve
from chatgpt_wecom.daemon.pipeline.delivery import DeliveryPolicy
from chatgpt_wecom.daemon.services import Services, Tuning
from chatgpt_wecom.demo.ports import unused_port
from tests.fakes.model import FakeModel
from tests.fakes.waiting import wait_until
from tests.fakes.wecom import FakeWeCom
from tests.wecom_callbacks import TEST_AES_KEY, TEST_CORP_ID, TEST_TOKEN, CallbackSigner, SignedRequest

AGENT_ID = 1000002
MSG_IDS = itertools.count(1_000_000)  # unique MsgIds across daemons: a repeated MsgId is (rightly) a WeCom retry

FAST = Tuning(
    shutdown_grace=5.0,
    http_retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, timeout=2.0, config_error_cooldown=0.5),
    delivery=DeliveryPolicy(first_pause=0.05, max_pause=0.2, give_up_after=30.0),
)


SOCKETS = Path(tempfile.gettempdir()) / f"cw-test-{os.getpid()}"  # short: a socket path has at most 107 bytes
# Gone when the process exits, pytest's workers and the benchmarks alike (nothing to do if it was never made).
atexit.register(shutil.rmtree, SOCKETS, ignore_errors=True)


def short_socket_path() -> Path:
    """A fresh control socket path short enough for AF_UNIX (pytest's tmp_path can be too long)."""
    SOCKETS.mkdir(mode=0o700, exist_ok=True)
    return Path(tempfile.mkdtemp(dir=SOCKETS)) / "control.sock"


def make_settings(tmp_path: Path, wecom: FakeWeCom, model: FakeModel, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "corp_id": TEST_CORP_ID,
        "agent_id": AGENT_ID,
        "agent_secret": wecom.secret,
        "receive_msg_token": TEST_TOKEN,
        "receive_msg_key": TEST_AES_KEY,
        "api_key": "sk-test-key",
        "base_url": model.base_url,
        "wecom_api_base": wecom.base_url,
        "host": "127.0.0.1",
        "port": unused_port(),
        "data_dir": tmp_path / "data",
        "control_socket": short_socket_path(),
        "model_timeout": 20.0,
        "model_max_retries": 0,
    }
    values.update(overrides)
    return Settings(**values)


class DaemonRunner:
    def __init__(
        self,
        settings: Settings,
        tuning: Tuning = FAST,
        config_path: Path | None = None,
        extra_channels: Sequence[Channel] = (),
    ) -> None:
        self.settings = settings
        self.extra_channels = extra_channels
        self.tuning = tuning
        self.config_path = config_path
        self.services: Services | None = None  # the running daemon's services, for white-box waits
        self.signer = CallbackSigner(TEST_TOKEN, TEST_AES_KEY, TEST_CORP_ID, str(AGENT_ID))
        self.url = f"http://127.0.0.1:{settings.port}"
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.http = aiohttp.ClientSession()

    async def start(self) -> DaemonRunner:
        self._task = asyncio.create_task(
            serve(self.settings, self.tuning, self._stop, self.config_path, self._ready, self.extra_channels)
        )
        deadline = time.monotonic() + 10
        while True:
            if self._task.done():
                self._task.result()  # raises the start-up error
                raise AssertionError("daemon exited during start-up")
            try:
                async with self.http.get(f"{self.url}/healthz") as resp:
                    if resp.status == 200 and self.services is not None:  # ours: not another daemon on the port
                        return self
            except aiohttp.ClientConnectionError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("daemon did not become ready")
            await asyncio.sleep(0.01)

    def _ready(self, services: Services) -> None:
        self.services = services

    async def idle(self, timeout: float = 15.0) -> None:
        """Wait until every accepted message is finished (answered and delivered, or given up)."""
        services = self.services
        assert services is not None
        await wait_until(lambda: services.dispatcher.depth == 0, timeout, "the pipeline to be idle")

    async def post(self, req: SignedRequest, path: str = "/ai/callback") -> tuple[int, str]:
        async with self.http.post(f"{self.url}{path}", params=req.query, data=req.body) as resp:
            return resp.status, await resp.text()

    async def get(self, req: SignedRequest, path: str = "/ai/callback") -> tuple[int, str]:
        async with self.http.get(f"{self.url}{path}", params=req.query) as resp:
            return resp.status, await resp.text()

    async def say(self, user: str, text: str) -> None:
        """Send `text` as `user` (a fresh MsgId) and wait until the whole reply is delivered."""
        await self.ask(user, text, next(MSG_IDS))
        await self.idle()

    async def ask(self, user: str, text: str, msg_id: int) -> None:
        """Send a text message as `user` and check it was acked the way WeCom expects."""
        status, body = await self.post(self.signer.text(user, text, msg_id))
        assert (status, body) == (200, ""), (status, body)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def __aenter__(self) -> DaemonRunner:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        try:
            await self.stop()
        finally:
            await self.http.close()


def write_config(settings: Settings, path: Path) -> Path:
    """The settings as a config.yml, the way an operator would write it."""
    values: dict[str, Any] = {}
    for name, value in settings.model_dump().items():
        if value is not None:
            values[name] = _plain(value)
    path.write_text(yaml.safe_dump(values, allow_unicode=True), encoding="utf-8")
    return path


def _plain(value: Any) -> Any:
    """A settings value as YAML takes it: secrets revealed, paths as text, nested lists and mappings too."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


class DaemonProcess:
    """`chatgpt-wecom run` as a real child process, for signals and kill -9.

    `nofile` sets the child's RLIMIT_NOFILE (soft and hard), as systemd's `LimitNOFILE=` would.
    """

    def __init__(self, settings: Settings, workdir: Path, nofile: int | None = None) -> None:
        self.settings = settings
        self.nofile = nofile
        self.config = write_config(settings, workdir / "config.yml")
        self.log_path = workdir / "daemon.log"
        self.url = f"http://127.0.0.1:{settings.port}"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "chatgpt_wecom", "run", "--config", str(self.config),
                stdin=asyncio.subprocess.DEVNULL, stdout=log, stderr=log,
                preexec_fn=self._limits if self.nofile else None,
            )  # fmt: skip
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 20
            while True:
                if self.proc.returncode is not None:
                    raise AssertionError(f"daemon exited with {self.proc.returncode}:\n{self.log()}")
                try:
                    async with http.get(f"{self.url}/healthz") as resp:
                        if resp.status == 200:
                            return self
                except aiohttp.ClientConnectionError:
                    pass
                if time.monotonic() > deadline:
                    raise AssertionError(f"daemon did not become ready:\n{self.log()}")
                await asyncio.sleep(0.02)

    def _limits(self) -> None:
        """Runs in the child between fork and exec."""
        if self.nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    async def kill(self) -> None:
        """kill -9: no chance to clean up."""
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()

    async def terminate(self, timeout: float = 30.0) -> int:
        """SIGTERM, then the exit code."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def reload(self) -> None:
        """SIGHUP, and wait until the daemon has logged the outcome."""
        assert self.proc is not None
        done = self.log().count("reload: ")
        self.proc.send_signal(signal.SIGHUP)
        await wait_until(lambda: self.log().count("reload: ") > done, what="the reload to be logged")

    async def ensure_stopped(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            await self.kill()

    async def __aenter__(self) -> DaemonProcess:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.ensure_stopped()


class Chat:
    """A conversation with one daemon: say something as a user, get the reply texts it caused."""

    def __init__(self, daemon: DaemonRunner, wecom: FakeWeCom) -> None:
        self.daemon, self.wecom = daemon, wecom

    async def say(self, user: str, text: str) -> str:
        before = len(self.wecom.texts_to(user))
        await self.daemon.say(user, text)  # the whole reply, however many parts it streamed in
        return "\n".join(self.wecom.texts_to(user)[before:])


class FakeClock:
    """A settable 'now' for the daemon (Tuning.clock): quota days and usage without waiting for midnight."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
