"""The operator app: a thin shell that holds the pages, routes daemon messages to them, and offers commands.

All daemon I/O lives in the `Connection` (the event stream, reconnects) and in the pages' workers.
Build it with `make_app()` — the CLI and the tests construct it the same way.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.notifications import SeverityLevel
from textual.reactive import reactive
from textual.screen import Screen

from chatgpt_wecom.tui.connection import Connection, DaemonEvents, LinkDown, LinkUp, Settled
from chatgpt_wecom.tui.formats import Formats
from chatgpt_wecom.tui.live import LIMIT as LIVE_LIMIT
from chatgpt_wecom.tui.screens import PAGES, Context, OperatorScreen
from chatgpt_wecom.tui.screens.live import LiveScreen
from chatgpt_wecom.tui.widgets import LinkState
from chatgpt_wecom.visible import visible

SCREEN_NAMES: tuple[str, ...] = tuple(PAGES)
HELP_KEYS = Binding.Group("Help")  # "? F1 Help" (F1 alone while typing: there "?" is text)


class OperatorApp(App[None]):
    """`OperatorApp(socket_path, screen="playground").run()`; number keys switch pages, Ctrl+P opens commands."""

    CSS_PATH = "app.tcss"
    TITLE = "chatgpt-wecom"
    BINDINGS: ClassVar = [
        # One footer item for the eight page keys ("1…8 Pages"); the keys panel (?) names the others.
        *(
            Binding(
                key,
                f"page('{name}')",
                "Pages" if n == 0 else title,
                key_display="1…8" if n == 0 else key,
                show=n == 0,
                tooltip=f"{key} {title}",
            )
            for n, (name, (key, title, _)) in enumerate(PAGES.items())
        ),
        Binding("ctrl+q", "quit", "Quit", priority=True),
        Binding("question_mark", "toggle_help", "Help", key_display="?", group=HELP_KEYS),
        Binding("f1", "toggle_help", "Help", key_display="F1", priority=True, group=HELP_KEYS),
    ]

    link: reactive[LinkState] = reactive(LinkState())

    def __init__(
        self,
        socket_path: Path,
        *,
        screen: str | None = None,
        formats: Formats | None = None,
        connection: dict[str, float] | None = None,
        live_limit: int = LIVE_LIMIT,
        title: str | None = None,
        demo: bool = False,
    ) -> None:
        """`screen`: the page to open on (one of SCREEN_NAMES); `connection`: Connection timing options;
        `live_limit`: rows the Live page keeps; `title`: replaces the header's title (the demo labels itself);
        `demo`: the daemon is the demo's (the Playground says its answers reach nobody real)."""
        if screen is not None and screen not in PAGES:
            raise ValueError(f"unknown screen {screen!r}; one of: {', '.join(PAGES)}")
        super().__init__()
        if title:
            self.title = title
        self.connection = Connection(self, socket_path, **(connection or {}))
        self.formats = formats or Formats()
        ctx = Context(self.connection, self.formats, demo=demo)
        self.pages: dict[str, OperatorScreen] = {
            name: LiveScreen(ctx, live_limit) if cls is LiveScreen else cls(ctx) for name, (_, _, cls) in PAGES.items()
        }
        for name, page in self.pages.items():
            self.add_mode(name, _constant(page))
        self.first_page = screen or "live"

    @property
    def page(self) -> OperatorScreen:
        """The page shown (under any dialog)."""
        return self.pages.get(self.current_mode, self.pages[self.first_page])

    def on_mount(self) -> None:
        self.link = LinkState(reason=f"({self.connection.socket_path})")
        self.switch_mode(self.first_page)
        self.connection.start()

    async def on_unmount(self) -> None:
        await self.connection.close()

    def action_toggle_help(self) -> None:
        """Show the keys of the page and the app beside it, or hide them (Esc hides them too)."""
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_page(self, name: str) -> None:
        """Show page `name`."""
        if name in PAGES and name != self.current_mode:
            self.switch_mode(name)

    def notify(
        self,
        message: str,
        *,
        title: str = "",
        severity: SeverityLevel = "information",
        timeout: float | None = None,
        markup: bool = True,
    ) -> None:
        """Every toast (the pages' too): daemon and user text in it has its controls spelled out (`visible`)."""
        message, title = visible(message, multiline=True), visible(title)
        super().notify(message, title=title, severity=severity, timeout=timeout, markup=markup)

    # --- from the connection ---------------------------------------------------------------------------
    def on_link_up(self, message: LinkUp) -> None:
        was_down = not self.link.connected and self.link.version != ""
        self.formats.use_zone(message.status.timezone)  # every time shown is in the daemon's configured zone
        self.link = LinkState(
            connected=True, connecting=False, paused=message.status.paused, version=message.status.version,
            zone=self.formats.zone,
        )  # fmt: skip
        if was_down:
            self.notify("reconnected to the daemon", markup=False)
        self.page.reload()

    def on_link_down(self, message: LinkDown) -> None:
        if self.link.connected:
            self.notify("lost the daemon — reconnecting…", severity="warning", markup=False)
        elif message.refused and message.reason != self.link.reason:  # whole, once: the bar has one line
            self.notify(message.reason, title="not connected", severity="error", timeout=10, markup=False)
        failures = 0 if self.link.connected or message.refused else self.link.failures + 1  # refused: it runs
        gone = not os.path.exists(self.connection.socket_path)
        self.link = LinkState(
            connected=False, connecting=False, reason=message.reason, version=self.link.version,
            zone=self.link.zone, failures=failures, gone=gone,
        )  # fmt: skip

    def on_daemon_events(self, message: DaemonEvents) -> None:
        if message.dropped:
            self.notify(
                f"{message.dropped} events dropped (the UI fell behind the daemon)", severity="warning", markup=False
            )
        errors = []
        for event in message.events:
            if event.kind in ("bot.paused", "bot.resumed"):
                self.link = dataclasses.replace(self.link, paused=event.kind == "bot.paused")
            elif event.kind == "error":
                errors.append(event)
        if errors:  # one toast per batch, however many errors: a failing model must not flood the screen
            first = errors[0].data
            more = f" (and {len(errors) - 1} more — see Status)" if len(errors) > 1 else ""
            title = f"error ({first.get('source', 'daemon')})"
            self.notify(f"{first.get('error', '')}{more}", title=title, severity="error", markup=False)
        for page in self.pages.values():
            page.ingest(message.events)

    def on_settled(self, message: Settled) -> None:
        for page in self.pages.values():
            page.settle(message.exchanges)

    # --- command palette ---------------------------------------------------------------------------------
    def get_system_commands(self, screen: Screen[object]) -> Iterable[SystemCommand]:
        for name, (key, title, _) in PAGES.items():
            yield SystemCommand(f"{title} page", f"Show the {title} page (key {key})", _switch(self, name))
        yield SystemCommand("Pause the bot", "Everyone but admins gets the pause notice", self._on_page("pause"))
        yield SystemCommand("Resume the bot", "Answer again after a pause", self._on_page("resume"))
        yield SystemCommand("Reload config", "Re-read config.yml in the daemon (like SIGHUP)", self._on_page("reload"))
        yield SystemCommand("Reconnect now", "Retry the daemon without waiting", self.connection.retry_now)
        yield from super().get_system_commands(screen)

    def _on_page(self, what: str) -> Callable[[], None]:
        """A palette callback that runs an operator action on the page shown (its dialogs appear there)."""

        def run() -> None:
            page = self.page
            {"pause": page.pause_bot, "resume": page.resume_bot, "reload": page.reload_config}[what]()

        return run


def _constant(page: OperatorScreen) -> Callable[[], Screen[None]]:
    return lambda: page


def _switch(app: OperatorApp, name: str) -> Callable[[], None]:
    return lambda: app.action_page(name)


def make_app(
    socket_path: Path,
    *,
    screen: str | None = None,
    formats: Formats | None = None,
    connection: dict[str, float] | None = None,
    live_limit: int = LIVE_LIMIT,
    title: str | None = None,
    demo: bool = False,
) -> OperatorApp:
    """The one way to build the app (the CLI and the tests both call this)."""
    return OperatorApp(
        socket_path,
        screen=screen,
        formats=formats,
        connection=connection,
        live_limit=live_limit,
        title=title,
        demo=demo,
    )


def run_tui(socket_path: Path, *, screen: str | None = None, title: str | None = None, demo: bool = False) -> int:
    """Run the operator UI until the operator quits (blocking); the app's return code (non-zero after a crash)."""
    app = make_app(socket_path, screen=screen, title=title, demo=demo)
    app.run()
    return app.return_code or 0
