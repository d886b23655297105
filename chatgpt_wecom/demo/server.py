"""`python -m chatgpt_wecom.demo.server --dir DIR`: the real daemon against the built-in stand-ins.

One asyncio loop runs the WeCom stand-in, the echo model (unless a real model is configured) and `serve()` with
demo settings: the demo corp `wwdemo0000000000`, freshly generated secrets, the callback on 127.0.0.1 and a free
port, data in DIR. The model is the real one when `APIKEY` or `OPENAI_API_KEY` is in the environment
(`BASE_URL`, `MODEL` and `HTTP_PROXY` honoured, as in a real deployment) and the echo model otherwise. No other
environment variable is read: a shell set up for a real deployment cannot point the demo at real WeCom.

SIGTERM or SIGINT stops it (exit 0). With `--stop-on-eof` it also stops when its stdin reaches end of file —
the launcher keeps that pipe open, so the demo never outlives it, even after a `kill -9`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import logging
import os
import secrets
import string
import sys
from pathlib import Path
from typing import Any

from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from chatgpt_wecom.cli import setup_logging
from chatgpt_wecom.config import Settings
from chatgpt_wecom.daemon.control.site import ControlSocketError
from chatgpt_wecom.daemon.main import serve
from chatgpt_wecom.daemon.store.db import UnusableDatabaseError
from chatgpt_wecom.demo import DEMO_ADMIN, DEMO_CORP_ID, demo_socket_path
from chatgpt_wecom.demo.aibot import DemoAIBot
from chatgpt_wecom.demo.ports import unused_port
from chatgpt_wecom.demo.standins import ECHO_MODEL, DemoWeCom, EchoModel

__all__ = ["DemoSettings", "demo_settings", "log_level", "main", "model_from_environment", "run"]

log = logging.getLogger("chatgpt_wecom.demo")

DEMO_AGENT_ID = 1000002
ECHO_PACE = 0.15  # seconds between the echo model's streamed pieces: slow enough to see an answer grow in place
LOOPBACK = ("127.0.0.1", "localhost")


class DemoSettings(Settings):
    """Settings built from the demo's own values only: the environment does not override them."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings,)


def model_from_environment(env: dict[str, str]) -> dict[str, Any] | None:
    """The real model's settings when the environment has a key (APIKEY or OPENAI_API_KEY), else None."""
    key = env.get("APIKEY") or env.get("OPENAI_API_KEY")
    if not key:
        return None
    values: dict[str, Any] = {"api_key": key}
    for name in ("BASE_URL", "MODEL", "HTTP_PROXY"):
        if env.get(name):
            values[name.lower()] = env[name]
    return values


def log_level() -> str:
    """LOG_LEVEL from the environment when it is a valid level, else info."""
    level = os.environ.get("LOG_LEVEL", "").strip().lower()
    level = "warning" if level == "warn" else level
    return level if level in ("debug", "info", "warning", "error") else "info"


def demo_settings(data_dir: Path, wecom: DemoWeCom, model: dict[str, Any], aibot: DemoAIBot | None = None) -> Settings:
    """The daemon's settings for a demo with data in `data_dir`, WeCom = `wecom`, and `model`'s values; the AI bot
    on `aibot` when given."""
    alphabet = string.ascii_letters + string.digits
    port = unused_port()
    values: dict[str, Any] = {
        "corp_id": wecom.corp_id,
        "agent_id": wecom.agent_id,
        "agent_secret": wecom.secret,
        "receive_msg_token": secrets.token_urlsafe(16),
        "receive_msg_key": "".join(secrets.choice(alphabet) for _ in range(43)),
        "wecom_api_base": wecom.base_url,
        "host": "127.0.0.1",
        "port": port,
        "service_url": f"http://127.0.0.1:{port}",  # history links (#查对话) open on this machine
        "admin_users": [DEMO_ADMIN],  # the Playground's own user may try the admin commands
        "data_dir": data_dir,
        "control_socket": demo_socket_path(data_dir),
        "log_level": log_level(),
        **model,
    }
    if aibot is not None:
        values.update(wecom_bot_id=aibot.bot_id, wecom_bot_secret=aibot.secret, wecom_bot_ws_url=aibot.ws_url)
    return DemoSettings(**values)


def _loopback_without_proxy() -> None:
    """Keep a proxy in the environment (HTTP_PROXY, ALL_PROXY) away from the stand-ins on 127.0.0.1."""
    current = [h for h in os.environ.get("NO_PROXY", os.environ.get("no_proxy", "")).split(",") if h.strip()]
    merged = ",".join(dict.fromkeys([*current, *LOOPBACK]))
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = merged


async def _stop_on_eof(stop: asyncio.Event) -> None:
    """Set `stop` when stdin reaches end of file (the launcher is gone)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    transport, _ = await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    try:
        while await reader.read(4096):
            pass
        log.info("DEMO MODE — the launcher went away; stopping")
        stop.set()
    finally:
        transport.close()


async def run(data_dir: Path, *, stop_on_eof: bool = False) -> None:
    """Run the demo with data in `data_dir` (an existing folder, absolute) until SIGTERM/SIGINT (or stdin's end
    with `stop_on_eof`)."""
    _loopback_without_proxy()
    real_model = model_from_environment(dict(os.environ))
    stop = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        wecom = await stack.enter_async_context(
            DemoWeCom(corp_id=DEMO_CORP_ID, agent_id=DEMO_AGENT_ID, secret=secrets.token_urlsafe(24))
        )
        if real_model is None:
            echo = await stack.enter_async_context(EchoModel(pace=ECHO_PACE))
            model = {"api_key": "demo-echo-model", "base_url": echo.base_url, "model": ECHO_MODEL}
        else:
            model = real_model
        aibot = await stack.enter_async_context(DemoAIBot(secret=secrets.token_urlsafe(24)))
        settings = demo_settings(data_dir, wecom, model, aibot)
        log.info("DEMO MODE — WeCom is a built-in stand-in at %s (corp %s): nothing reaches a real WeCom",
                 wecom.base_url, DEMO_CORP_ID)  # fmt: skip
        if real_model is None:
            log.info("DEMO MODE — the model is the built-in echo model: it repeats what you say. "
                     "Set APIKEY (and BASE_URL, MODEL) for a real one")  # fmt: skip
        else:
            log.info("DEMO MODE — the model is %s, from APIKEY in the environment", settings.model)
        log.info("DEMO MODE — the AI bot (智能机器人) is a built-in stand-in too: chat with it in a browser at %s/ "
                 "and watch the answer grow in place", aibot.base_url)  # fmt: skip
        log.info("DEMO MODE — data in %s; control socket %s (chatgpt-wecom ctl --socket %s status)",
                 data_dir, settings.socket_path, settings.socket_path)  # fmt: skip
        if stop_on_eof:
            watcher = asyncio.create_task(_stop_on_eof(stop), name="stop-on-eof")
            stack.callback(watcher.cancel)
        await serve(settings, stop=stop)


def main(argv: list[str] | None = None) -> int:
    """Parse the options, run the demo; the exit code."""
    parser = argparse.ArgumentParser(prog="python -m chatgpt_wecom.demo.server", description=__doc__.split("\n")[0])
    parser.add_argument("--dir", type=Path, default=Path("demo-data"), help="data folder (default ./demo-data)")
    parser.add_argument("--stop-on-eof", action="store_true", help="also stop when stdin reaches end of file")
    args = parser.parse_args(argv)
    setup_logging(log_level())
    data_dir = args.dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        asyncio.run(run(data_dir, stop_on_eof=args.stop_on_eof))
    except ControlSocketError as exc:
        print(f"chatgpt-wecom demo: {exc}", file=sys.stderr)
        return 1
    except UnusableDatabaseError as exc:
        print(f"chatgpt-wecom demo: database: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        print(f"chatgpt-wecom demo: a port is already in use ({exc}); try again", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
