"""`chatgpt-wecom check`: is this configuration ready to run? One line per check, ✓ or ✗, each naming the fix.

The checks, in order:

* **config** — the file (or the environment alone) validates. When it does not, every problem gets a line and
  the other checks are skipped: they would only repeat the problem.
* **data_dir** — the folder exists and is writable, or can be created; a damaged database, or one from a newer
  release, is refused, and one the next start will upgrade is named (with a reminder to copy it first).
* **control socket** — the path fits in an AF_UNIX address and can be created; a live daemon answering on it
  is reported (and never disturbed), a stale socket left by a crash is fine (the daemon replaces it).
* **wecom** — one `gettoken` call, no retries: a wrong secret (40001) or an untrusted server IP (60020) is named
  with its fix. One attempt only, because WeCom bans an IP for an hour after repeated wrong secrets.
* **model** — one tiny chat completion (`max_tokens` 5), no retries, timed. Five tokens take about as long as the
  first, so it gets the time the daemon gives an answer to start (`first_token_timeout`, at most 30 s).

The two network checks run concurrently. No line ever holds a secret: the config errors are written without
them, the WeCom and model errors are scrubbed by their clients, and every line is scrubbed once more here.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import socket
import stat
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning
from chatgpt_wecom.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings, redact_userinfo
from chatgpt_wecom.daemon.channels.registry import channel_checks
from chatgpt_wecom.daemon.control.site import MAX_SOCKET_PATH
from chatgpt_wecom.daemon.model.client import ModelClient, ModelError, ModelTimeoutError
from chatgpt_wecom.daemon.model.http import first_token_wait
from chatgpt_wecom.daemon.store.db import UnusableDatabaseError, stored_schema
from chatgpt_wecom.daemon.store.schema import MIGRATIONS

__all__ = ["CheckResult", "run_checks"]

MODEL_TIMEOUT = 30.0  # seconds, at most, for the one model call (less when first_token_timeout is shorter)
MODEL_PROMPT = "Reply with the single word: OK"
MODEL_MAX_TOKENS = 5
SKIPPED = "data_dir, control socket, wecom, model"  # the checks that need a valid config


@dataclass(frozen=True)
class CheckResult:
    """The verdict of one check: `name`, whether it passed, and a sentence saying what was found."""

    name: str
    ok: bool | None  # None: skipped
    detail: str

    def line(self) -> str:
        mark = {True: "✓", False: "✗", None: "–"}[self.ok]
        return f"{mark} {self.name}: {self.detail}"


def _pass(name: str, detail: str) -> CheckResult:
    return CheckResult(name, True, detail)


def _fail(name: str, detail: str) -> CheckResult:
    return CheckResult(name, False, detail)


async def run_checks(config: Path | None, emit: Callable[[str], None]) -> bool:
    """Run every check against `config` (default ./config.yml, or the environment alone), `emit` one line per
    check as soon as it is known; True when all passed."""
    with _captured_logs() as warnings:
        try:
            settings = load_settings(config or DEFAULT_CONFIG_PATH, require_file=config is not None)
        except ConfigError as exc:
            for line in exc.lines:
                emit(_fail("config", line).line())
            emit(CheckResult(SKIPPED, None, "skipped until the config is valid").line())
            return False
        scrub = _scrubber(settings)
        results = [_config_result(config, list(warnings))]
        emit(scrub(results[0].line()))
        network = (asyncio.create_task(check_channels(settings)), asyncio.create_task(_model_lines(settings)))
        try:
            for local in (check_data_dir(settings.data_dir), await check_socket(settings)):
                results.append(local)
                emit(scrub(local.line()))
            for task in network:
                for result in await task:
                    results.append(result)
                    emit(scrub(result.line()))
        finally:
            for task in network:
                task.cancel()
    return all(r.ok for r in results)


# --- config --------------------------------------------------------------------------------------------
class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextlib.contextmanager
def _captured_logs() -> Iterator[list[str]]:
    """The package's log records (warnings and worse) while the checks run, instead of stray lines on stderr:
    the config's (unknown keys) become part of its line; the clients' repeat what the check lines say."""
    logger = logging.getLogger("chatgpt_wecom")
    handler, propagate = _Collect(), logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def _config_result(config: Path | None, warnings: list[str]) -> CheckResult:
    path = config or DEFAULT_CONFIG_PATH
    if path.exists():
        detail = f"{path.resolve()} is valid"
    else:
        detail = f"valid, from the environment alone (no config file at {path.resolve()})"
    notes = [w.removeprefix("config: ") for w in warnings]
    return _pass("config", detail + (f" ({'; '.join(notes)})" if notes else ""))


def _scrubber(settings: Settings) -> Callable[[str], str]:
    """A function that masks every configured secret in a line — the last guard before the terminal."""
    secrets = sorted({v for v in settings.secret_values() if len(v) >= 4}, key=len, reverse=True)

    def scrub(line: str) -> str:
        for secret in secrets:
            line = line.replace(secret, "***")
        return redact_userinfo(line)  # a password in a URL (wecom_api_base, base_url) is a secret too

    return scrub


# --- local checks --------------------------------------------------------------------------------------
def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def check_data_dir(data_dir: Path) -> CheckResult:
    """The data folder is writable, or can be created (nothing is created here)."""
    try:
        return _data_dir(data_dir)
    except OSError as exc:  # e.g. a parent this user may not enter
        return _fail("data_dir", f"{data_dir} cannot be used by this user ({exc.strerror or exc})")


def _data_dir(data_dir: Path) -> CheckResult:
    name = "data_dir"
    if not data_dir.exists():
        base = _nearest_existing(data_dir)
        if base.is_dir() and os.access(base, os.W_OK | os.X_OK):
            return _pass(name, f"{data_dir} will be created at the first start")
        return _fail(name, f"{data_dir} does not exist and cannot be created: {base} is not writable by this user")
    if not data_dir.is_dir():
        return _fail(name, f"{data_dir} is not a folder; set data_dir to a folder")
    try:
        with tempfile.TemporaryFile(dir=data_dir):
            pass
    except OSError as exc:
        return _fail(name, f"{data_dir} is not writable by this user ({exc.strerror})")
    database = data_dir / "chatgpt-wecom.sqlite3"
    if not database.exists():
        return _pass(name, f"{data_dir} is writable")
    if not os.access(database, os.R_OK | os.W_OK):
        return _fail(name, f"{database} is not writable by this user; run as the daemon's user")
    try:
        version = stored_schema(database)
    except UnusableDatabaseError as exc:  # damaged, or a newer release's
        return _fail(name, str(exc))
    if version is not None and 0 < version < len(MIGRATIONS):
        return _pass(name, f"{data_dir} is writable; the next start upgrades the database from schema version "
                           f"{version} to {len(MIGRATIONS)} (copy {data_dir} first to be able to go back)")  # fmt: skip
    return _pass(name, f"{data_dir} is writable")


def _connect_errno(path: Path) -> int:
    """0 when something accepts connections on the socket `path`, else the connect error's errno."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except OSError as exc:
            return exc.errno or errno.ECONNREFUSED
    return 0


async def check_socket(settings: Settings) -> CheckResult:
    """The control socket can be created — without touching a live one or removing a stale one."""
    name, path = "control socket", settings.socket_path
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        return _fail(name, f"{path} is longer than {MAX_SOCKET_PATH} bytes; set control_socket to a shorter path")
    if not (path.exists() or path.is_symlink()):
        base = _nearest_existing(path.parent)
        if base.is_dir() and os.access(base, os.W_OK | os.X_OK):
            return _pass(name, f"{path} can be created")
        return _fail(name, f"{path} cannot be created: {base} is not writable by this user")
    if not stat.S_ISSOCK(path.lstat().st_mode):
        return _fail(name, f"{path} exists and is not a socket; remove it or set control_socket")
    err = _connect_errno(path)
    if err in (errno.EACCES, errno.EPERM):
        return _fail(name, f"{path} belongs to another user; run check as the daemon's user")
    if err:
        return _pass(name, f"{path} can be created (the stale socket of an earlier run will be replaced)")
    try:
        async with ControlClient(path, timeout=5.0) as client:
            status = await client.status()
    except (DaemonNotRunning, ControlError, aiohttp.ClientError, ValueError, TimeoutError):
        return _fail(name, f"something answers on {path}, but not as chatgpt-wecom; set control_socket elsewhere")
    if Path(status.data_dir) != settings.data_dir:
        return _fail(
            name,
            f"another daemon is running on {path} (data_dir {status.data_dir}); this config cannot start beside it",
        )
    return _pass(name, f"a daemon is running and answers on {path} (up {_duration(status.uptime)})")


def _duration(seconds: float) -> str:
    minutes, hours = int(seconds // 60), int(seconds // 3600)
    return f"{hours} h {minutes % 60} min" if hours else f"{minutes} min" if minutes else f"{int(seconds)} s"


# --- network checks ------------------------------------------------------------------------------------
async def check_channels(settings: Settings) -> list[CheckResult]:
    """Each configured channel's own check (one call to its platform, no retries), one line each."""
    return [CheckResult(name, ok, detail) for name, ok, detail in await channel_checks(settings)]


async def _model_lines(settings: Settings) -> list[CheckResult]:
    return [await check_model(settings)]


async def check_model(settings: Settings) -> CheckResult:
    """One tiny completion, no retries, within the first-token wait (at most `MODEL_TIMEOUT`)."""
    limit = min(first_token_wait(settings), MODEL_TIMEOUT)
    quick = settings.model_copy(update={"model_max_retries": 0, "model_timeout": limit, "first_token_timeout": limit})
    client = ModelClient.from_settings(quick)
    where = f"{client.model} at {client.endpoint}"
    started = time.monotonic()
    try:
        await client.complete([{"role": "user", "content": MODEL_PROMPT}], max_tokens=MODEL_MAX_TOKENS)
    except ModelTimeoutError:
        return _fail("model", f"{where} did not answer within {limit:g} s (first_token_timeout)")
    except ModelError as exc:
        reason = str(exc).removeprefix(f"model endpoint {client.endpoint} ")
        return _fail("model", f"{where} {reason}")
    except Exception as exc:
        return _fail("model", f"{where} answered, but not like an OpenAI-compatible API ({type(exc).__name__})")
    finally:
        await client.close()
    return _pass("model", f"{where} answered in {time.monotonic() - started:.1f} s")
