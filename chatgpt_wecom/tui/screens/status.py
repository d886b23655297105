"""Status: health, model, each channel, WeCom token state, queue, today's counts, secrets set (never values),
last errors."""

from __future__ import annotations

from typing import ClassVar

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Static

from chatgpt_wecom import protocol as p
from chatgpt_wecom.channel_text import channel_facts
from chatgpt_wecom.tui import formats as fmt
from chatgpt_wecom.tui.formats import Formats
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.visible import visible

REFRESH_EVERY = 5.0  # seconds, while the page is shown


def yes_no(value: bool) -> Text:
    return Text("✓", "bold green") if value else Text("✗", "bold red")


def render_status(s: p.Status, formats: Formats) -> RenderableType:
    """The status as titled key/value sections and a table of the last errors (daemon text shown literally)."""
    sections: list[RenderableType] = []
    grid = Table()

    def section(title: str) -> None:
        nonlocal grid
        grid = Table(box=None, show_header=False, title=title, title_justify="left", title_style="bold underline")
        grid.add_column(style="bold", justify="right", width=14)
        grid.add_column()
        sections.append(grid)

    def row(key: str, value: str | Text) -> None:
        grid.add_row(key, literal(value))

    section("daemon")
    row("version", s.version)
    row("uptime", f"{fmt.duration(s.uptime)} (since {formats.stamp(s.started_at)})")
    notice = visible(s.pause_notice)
    row("bot", Text(f"PAUSED — notice: {notice}", "bold yellow") if s.paused else Text("answering", "green"))
    row("config", s.config_path or "(none: environment only)")
    row("data dir", s.data_dir)
    section("model")
    row("model", s.model)
    row("endpoint", s.model_endpoint)
    if s.channels:
        section("channels")
        for channel in s.channels:
            row(visible(channel.name), channel_text(channel, formats))
    if s.wecom_app is not None:  # a deployment may have only the AI bot, or only DingTalk
        section("wecom")
        row("api", s.wecom_app.api_base)
        row("corp / agent", f"{s.wecom_app.corp_id} / {s.wecom_app.agent_id}")
        row("access token", token_text(s.wecom_app.token))
    if s.blocked:
        section("blocked")  # answers that wait to be delivered: why, and what fixes it
        for b in s.blocked:
            row(*blocked_text(b, formats))
        row("", Text("t: try them all now (after fixing the cause)", "dim"))
    section("pipeline")
    row("queue", f"{s.queue_depth} in the workers · {s.open_messages} not finished")
    row("today", f"{s.users_today} users · {s.questions_today} questions · {s.messages_today} messages")
    if any(s.feedback.values()):
        row("rated answers", f"👍 {s.feedback.get('good', 0)} · 👎 {s.feedback.get('bad', 0)}")
    section("secrets")
    secrets = Text()
    for name, is_set in sorted(s.secrets.items()):
        secrets.append_text(yes_no(is_set))
        secrets.append(f" {visible(name)}   ")
    row("set", secrets)
    errors = Table(title="last errors", title_justify="left", title_style="bold underline", expand=True)
    for column in ("time", "kind", "source", "error"):
        errors.add_column(column, overflow="fold", ratio=4 if column == "error" else None)
    for e in reversed(s.last_errors):
        cells = (formats.stamp(e.at), e.kind, str(e.data.get("source", "")), str(e.data.get("error", "")))
        errors.add_row(*map(literal, cells))
    if not s.last_errors:
        errors.add_row("", "", "", Text("none", "green"))
    return Group(*sections, errors)


def literal(value: str | Text) -> Text:
    """`value` as Rich text that is never parsed as markup (a Rich table parses plain strings), its control
    characters spelled out (`visible`)."""
    return value if isinstance(value, Text) else Text(visible(value))


def channel_text(c: p.ChannelStatus, formats: Formats) -> Text:
    """Whether a channel is up and since when, its reconnects and last error; its own facts on the next line."""
    if c.up:
        text = Text("✓ up", "green")
        if c.since is not None:
            text.append(f" since {formats.stamp(c.since)}")
    else:
        text = Text("✗ DOWN", "bold red")
        if c.since is not None:
            text.append(f" (last up {formats.stamp(c.since)})")
    text.append(f" · {c.reconnects} reconnects")
    if c.last_error:
        text.append(f" · last error: {visible(c.last_error)}", "red")
    if facts := channel_facts(c):
        text.append(f"\n{facts}", "dim")
    return text


def blocked_text(b: p.Blocked, formats: Formats) -> tuple[str, Text]:
    """A blocked conversation: who and where; since when, tries, the next try, why and the fix."""
    where = "" if b.chat.casefold() == b.user.casefold() else f" in {b.chat}"
    text = Text(f"since {formats.stamp(b.since)} · {b.tries} failed tries · next {formats.stamp(b.next_try_at)}")
    text.append(f"\n{b.reason}", "red")
    if b.hint:
        text.append(f"\nfix: {b.hint}", "yellow")
    return visible(f"{b.user}{where} ({b.channel})"), text


def token_text(t: p.TokenState) -> Text:
    """Whether the daemon holds a WeCom access token, for how long, and the last error."""
    if t.has_token:
        text = Text("✓ held", "green")
        if t.expires_in is not None:
            text.append(f", expires in {fmt.duration(t.expires_in)}")
    else:
        text = Text("✗ none yet (fetched on the first send)", "yellow")
    if t.last_error:
        code = f" [{t.last_error_code}]" if t.last_error_code is not None else ""
        text.append(f" · last error{code}: {visible(t.last_error)}", "red")
    return text


class StatusScreen(OperatorScreen):
    """Refreshes every few seconds while shown, and on pause/resume/reload/error events."""

    PAGE_TITLE = "Status"
    HOME = "#status-scroll"
    RELOAD_ON = frozenset({"bot.paused", "bot.resumed", "config.reloaded", "error", "delivery.failed"})
    BINDINGS: ClassVar = [
        Binding("p", "pause", "Pause/resume"),
        Binding("c", "reload_config", "Reload"),
        Binding("t", "retry", "Retry", show=False),  # named in the blocked section, where it applies
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.status: p.Status | None = None

    def compose_body(self) -> ComposeResult:
        with VerticalScroll(id="status-scroll"):
            yield Static("Waiting for the daemon…", id="status-body")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_EVERY, self._tick)

    def _tick(self) -> None:
        if self.is_current:
            self.reload()

    async def load(self) -> None:
        status = await self.call("load the status", self.client.status)
        if status is not None:
            self.status = status
            self.query_one("#status-body", Static).update(render_status(status, self.ctx.formats))

    def action_refresh(self) -> None:
        self.reload()

    def action_pause(self) -> None:
        if self.status is not None and self.status.paused:
            self.resume_bot()
        else:
            self.pause_bot()

    def action_reload_config(self) -> None:
        self.reload_config()

    def action_retry(self) -> None:
        self.retry_deliveries()
