"""What every page shares: the frame (header, body, link bar, footer), the daemon link, and data reloading."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import ClassVar, ParamSpec, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.widgets import Footer, Header

from chatgpt_wecom.client import ControlClient, ControlError, DaemonNotRunning
from chatgpt_wecom.protocol import Event, Exchange
from chatgpt_wecom.tui.connection import LINK_ERRORS, Connection, describe
from chatgpt_wecom.tui.formats import Formats
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog
from chatgpt_wecom.tui.widgets import LinkBar
from chatgpt_wecom.visible import visible

T = TypeVar("T")
P = ParamSpec("P")


@dataclass(frozen=True, slots=True)
class Context:
    """What a page needs from the app: the link to the daemon, how to format times, and whether it is the demo."""

    connection: Connection
    formats: Formats
    demo: bool = False  # the daemon is the demo's: replies go to a built-in WeCom stand-in, not to real people

    @property
    def client(self) -> ControlClient:
        return self.connection.client


class OperatorScreen(Screen[None]):
    """A page of the operator UI. Subclasses fill `compose_body`, `load` (fetch and show) and `ingest`."""

    PAGE_TITLE: ClassVar[str] = ""
    HOME: ClassVar[str] = ""  # selector of the page's main widget: focused on Escape (and at start)
    START: ClassVar[str] = ""  # selector of the widget focused at start, when not HOME
    RELOAD_ON: ClassVar[frozenset[str]] = frozenset()  # event kinds that make a visible page reload
    BINDINGS: ClassVar = [Binding("escape", "home", "Leave input", show=False)]

    def __init__(self, ctx: Context) -> None:
        super().__init__()
        self.ctx = ctx

    @property
    def client(self) -> ControlClient:
        return self.ctx.client

    def compose(self) -> ComposeResult:
        yield Header()
        yield from self.compose_body()
        yield LinkBar()
        yield Footer(compact=True)

    def compose_body(self) -> ComposeResult:
        """The page's own widgets."""
        return iter(())

    def on_mount(self) -> None:
        # Textual calls on_mount of every class in the MRO (subclass first): subclasses must not call super().
        self.sub_title = self.PAGE_TITLE
        if self.START or self.HOME:
            self.query_one(self.START or self.HOME).focus()

    def action_home(self) -> None:
        """Close the keys panel if it is open; else focus the page's main widget (so the number keys switch pages
        again after typing)."""
        if self.query("HelpPanel"):
            self.app.action_hide_help_panel()
            return
        if self.HOME:
            self.query_one(self.HOME).focus()

    def on_screen_resume(self) -> None:
        self.reload()

    def reload(self) -> None:
        """Fetch this page's data again (in a worker; a newer reload cancels an older one)."""
        if self.ctx.connection.connected and self.is_mounted:
            self._load_worker()

    @work(group="load", exclusive=True)
    async def _load_worker(self) -> None:
        try:
            await self.load()
        except NoMatches:
            if self.is_attached:
                raise
            # The app closed (or took the page down) while the data was on its way: nothing is left to show it on.

    async def load(self) -> None:
        """Fetch and show this page's data. Runs in a worker."""

    def ingest(self, events: list[Event]) -> None:
        """New events from the daemon (every page gets every batch, shown or not)."""
        if self.is_current and any(e.kind in self.RELOAD_ON for e in events):
            self.reload()

    def settle(self, exchanges: list[Exchange]) -> None:
        """Stored exchanges whose events the daemon could not replay after a reconnect (see `Connection`)."""

    async def call(self, what: str, request: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs) -> T | None:
        """Make a control-API request and await it; on failure tell the operator (naming `what`) and return None.

        The request is made here, not by the caller: a load cancelled before this starts leaves no coroutine that was
        never awaited."""
        try:
            return await request(*args, **kwargs)
        except DaemonNotRunning:
            self.notify(f"{what}: not connected to the daemon", severity="error", markup=False)
        except ControlError as exc:
            self.notify(f"{what}: {exc}", title=exc.code, severity="error", markup=False)
        except LINK_ERRORS as exc:
            self.notify(f"{what}: {describe(exc, self.ctx.connection.socket_path)}", severity="error", markup=False)
        return None

    # --- operator actions offered on every page (keys on Status, commands in the palette) ------------
    @work(group="bot")
    async def pause_bot(self) -> None:
        """Pause the bot after a confirmation: everyone but admins gets the pause notice."""
        question = "Pause the bot? Everyone but admins gets the pause notice instead of an answer."
        if not await self.app.push_screen_wait(ConfirmDialog(question, yes="Pause")):
            return
        if await self.call("pause the bot", self.client.pause) is not None:
            self.notify("the bot is paused", markup=False)

    @work(group="bot")
    async def retry_deliveries(self, user: str | None = None) -> None:
        """End the retry wait of `user`'s blocked deliveries (None: all of them): they are tried at once."""
        done = await self.call("retry deliveries", self.client.retry, user)
        if done is None:
            return
        who = f" of {visible(user)}" if user else ""
        if done.woken:
            self.notify(f"trying {len(done.woken)} blocked conversation(s){who} now", markup=False)
        else:
            self.notify(f"nothing{who} was blocked", markup=False)

    @work(group="bot")
    async def resume_bot(self) -> None:
        """Resume answering."""
        if await self.call("resume the bot", self.client.resume) is not None:
            self.notify("the bot answers again", markup=False)

    @work(group="bot")
    async def reload_config(self) -> None:
        """Ask the daemon to re-read its config file (like SIGHUP) and say what changed."""
        done = await self.call("reload the config", self.client.reload)
        if done is None:
            return
        said = f"config reloaded: {', '.join(done.changed) or 'nothing changed'}"
        if done.restart_needed:
            said += f" · restart needed for {', '.join(done.restart_needed)}"
        self.notify(said, severity="warning" if done.restart_needed else "information", markup=False)
