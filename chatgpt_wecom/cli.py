"""The `chatgpt-wecom` command. Thin: parse options, load config, hand over. Errors are one readable line."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from chatgpt_wecom import __version__
from chatgpt_wecom.config import DEFAULT_CONFIG_PATH, ConfigError, Settings, load_settings, resolve_socket
from chatgpt_wecom.ctl import ctl_app

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A WeCom (企业微信) self-built app connected to an LLM.",
)
app.add_typer(ctl_app, name="ctl")

ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="Path of config.yml (default: ./config.yml). Environment variables (CORP_ID, APIKEY, …) override it.",
        envvar="CHATGPT_WECOM_CONFIG",
        dir_okay=False,
    ),
]


def _fail(lines: list[str], code: int) -> typer.Exit:
    for line in lines:
        typer.echo(f"chatgpt-wecom: {line}", err=True)
    return typer.Exit(code)


def load_or_exit(config: Path | None) -> Settings:
    """Settings, or the config errors on stderr and exit code 2."""
    try:
        return load_settings(config or DEFAULT_CONFIG_PATH, require_file=config is not None)
    except ConfigError as exc:
        raise _fail([f"config: {line}" for line in exc.lines], 2) from None


def setup_logging(level: str) -> None:
    """The daemon's log, on stderr; a flood of one kind of line is a few lines and a count (daemon/logs.py)."""
    from chatgpt_wecom.daemon.logs import RepeatLimiter  # noqa: PLC0415 - ctl and tui never load the daemon

    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    logging.basicConfig(level=level.upper(), handlers=[RepeatLimiter(stream)], force=True)
    for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "openai", "aiosqlite"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))


def _print_version(given: bool) -> None:
    if given:
        typer.echo(f"chatgpt-wecom {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    _version: Annotated[
        bool,
        typer.Option("--version", help="Print the version and exit.", is_eager=True, callback=_print_version),
    ] = False,
) -> None:
    """A WeCom (企业微信) self-built app connected to an LLM."""


@app.command()
def run(config: ConfigOption = None) -> None:
    """Run the daemon: the WeCom callback on `host:port`, answers through the WeCom API."""
    from chatgpt_wecom.daemon.control.site import ControlSocketError  # noqa: PLC0415 - keep ctl/tui light
    from chatgpt_wecom.daemon.main import serve  # noqa: PLC0415
    from chatgpt_wecom.daemon.metrics import MetricsListenError  # noqa: PLC0415
    from chatgpt_wecom.daemon.store.db import UnusableDatabaseError  # noqa: PLC0415

    settings = load_or_exit(config)
    setup_logging(settings.log_level)
    config_path = config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    try:
        asyncio.run(serve(settings, config_path=config_path))
    except (ControlSocketError, MetricsListenError) as exc:
        raise _fail([str(exc)], 1) from None
    except UnusableDatabaseError as exc:  # exit 2: restarting cannot help
        raise _fail([f"database: {exc}"], 2) from None
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise _fail([f"port {settings.port} on {settings.host} is already in use (config key: port)"], 1) from None
        ours = (str(settings.data_dir), str(settings.socket_path.parent))
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS) or str(exc.filename or "").startswith(ours):
            # exit 2 like a config error: restarting cannot help (systemd's RestartPreventExitStatus=2)
            where = exc.filename or settings.data_dir
            raise _fail(
                [
                    f"cannot use {where}: {exc.strerror} — data_dir ({settings.data_dir}) must be a folder the "
                    f"daemon's user (uid {os.getuid()}) can create and write"
                ],
                2,
            ) from None
        raise


@app.command()
def check(config: ConfigOption = None) -> None:
    """Check the config, a WeCom token, one tiny model call and the control socket: one ✓/✗ line each."""
    from chatgpt_wecom.check import run_checks  # noqa: PLC0415 - imports daemon code

    ok = asyncio.run(run_checks(config, typer.echo))
    raise typer.Exit(0 if ok else 1)


@app.command()
def demo(
    data_dir: Annotated[
        Path,
        typer.Option("--data-dir", help="Where the demo keeps its database and socket.", file_okay=False),
    ] = Path("demo-data"),
) -> None:
    """Try it without WeCom: the daemon against a built-in WeCom stand-in, and the TUI on the Playground."""
    from chatgpt_wecom.demo.launcher import run_demo  # noqa: PLC0415

    raise typer.Exit(run_demo(data_dir))


@app.command()
def tui(
    config: ConfigOption = None,
    socket: Annotated[
        Path | None,
        typer.Option(
            "--socket",
            help="Control socket of the daemon (default: found from the config file).",
            envvar="CHATGPT_WECOM_SOCKET",
            dir_okay=False,
        ),
    ] = None,
    screen: Annotated[
        str | None,
        typer.Option("--screen", help="Page to open: live, users, words, quotas, history, playground or status."),
    ] = None,
) -> None:
    """The operator's terminal UI: live conversations, users, words, quotas, history, playground, status.

    It talks to a running daemon over its control socket and reconnects by itself when the daemon restarts."""
    from chatgpt_wecom.tui import run_tui  # noqa: PLC0415 - textual loads only for this command

    try:
        socket_path = resolve_socket(config, socket)
    except ConfigError as exc:
        raise _fail([f"config: {line}" for line in exc.lines], 2) from None
    try:
        code = run_tui(socket_path, screen=screen)
    except ValueError as exc:  # an unknown --screen
        raise _fail([str(exc)], 2) from None
    raise typer.Exit(code)


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


def main() -> None:
    app()
