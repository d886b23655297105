"""History: pick a user, read their whole conversation — each exchange tagged with its group or namespace when it
was not a private WeCom chat — and export it as Markdown to a file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.notifications import SeverityLevel
from textual.widgets import Input, Label, OptionList, RichLog, Static
from textual.widgets.option_list import Option

from chatgpt_wecom import protocol as p
from chatgpt_wecom.channel_text import exchange_where
from chatgpt_wecom.tui import formats as fmt
from chatgpt_wecom.tui.live import FEEDBACK_MARKS
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog, PromptDialog
from chatgpt_wecom.visible import visible


def default_export_path(user: str) -> str:
    """Where an export goes unless the operator says otherwise: their home folder (the TUI's working folder
    may not be writable, e.g. /app in Docker), under a file name made safe from the user id."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in user).lstrip(".") or "user"
    return str(Path.home() / f"history-{safe}.md")


class HistoryScreen(OperatorScreen):
    """Users active this month on the left (Enter opens one), or type any user id."""

    PAGE_TITLE = "History"
    HOME = "#history-users"
    BINDINGS: ClassVar = [
        Binding("slash,u", "focus_user", "User id"),
        Binding("e", "export", "Export"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.user: str | None = None
        self.exchanges: list[p.Exchange] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="history-body"):
            users = OptionList(id="history-users", markup=False)
            users.border_title = "users this month"
            yield users
            with Vertical(id="history-main"):
                with Horizontal(classes="toolbar"):
                    yield Label("user ", classes="field-label")
                    yield Input(placeholder="any user id, Enter to open (/)", id="history-user")
                yield Static("Pick a user on the left (Enter) or type a user id.", id="history-title", markup=False)
                # min_width: wrap at the width shown (RichLog wraps at 78 or more by default: cut at 80 columns)
                yield RichLog(id="history-log", wrap=True, markup=False, auto_scroll=False, min_width=20)
                yield Static("", id="history-status", classes="hint", markup=False)

    async def load(self) -> None:
        quotas = await self.call("load the users", self.client.quotas())
        if quotas is not None:
            box = self.query_one("#history-users", OptionList)
            before = box.highlighted
            box.clear_options()
            names = sorted((u.user_id for u in quotas.users), key=str.casefold)
            box.add_options([Option(visible(name), id=name) for name in names])
            if names:
                box.highlighted = min(before or 0, len(names) - 1)
        if self.user is not None:
            await self.open_user(self.user)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            self.query_one("#history-user", Input).value = visible(event.option.id)  # an Input shows it raw
            self.show_user(event.option.id)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.value.strip():
            self.show_user(event.value.strip())

    @work(group="load", exclusive=True)
    async def show_user(self, user: str) -> None:
        """Load and show `user`'s conversation."""
        await self.open_user(user)

    async def open_user(self, user: str) -> None:
        """Fetch `user`'s history and render it, oldest first."""
        items = await self.call(f"load the history of {user}", self.client.history(user))
        if items is None:
            return
        self.user, self.exchanges = user, items
        tokens = sum(x.prompt_tokens + x.completion_tokens for x in items)
        self.query_one("#history-title", Static).update(
            f"{visible(user)}: {len(items)} exchanges, {tokens} tokens · e export to Markdown"
        )
        log = self.query_one("#history-log", RichLog)
        log.clear()
        if not items:
            log.write(Text(f"No conversation with {visible(user)} yet.", "dim"))
        for x in items:
            log.write(self.render_exchange(x))
        log.scroll_home(animate=False)

    def render_exchange(self, x: p.Exchange) -> Text:
        """One exchange: a heading line (with where it happened, when that is a group or another namespace than
        WeCom's), the question, the answer (or why there is none)."""
        used = fmt.tokens(x.prompt_tokens, x.completion_tokens)
        text = Text(f"── {self.ctx.formats.stamp(x.asked_at)} · {visible(x.mode)} · ", "dim")
        if where := exchange_where(x.namespace, x.chat, x.user_id):
            text.append(where, "magenta")
            text.append(" · ", "dim")
        text.append(f"{used} tokens", "dim")
        if x.feedback in FEEDBACK_MARKS:
            text.append(f" · rated{FEEDBACK_MARKS[x.feedback]}", "dim")
        text.append("\nQ: ", "bold cyan")
        text.append(visible(x.question, multiline=True))
        text.append("\nA: ", "bold green")
        if x.answer is not None:
            text.append(visible(x.answer, multiline=True))
        else:
            text.append(f"(no answer: {visible(str(x.error))})", "red")
        text.append("\n")
        return text

    def action_focus_user(self) -> None:
        self.query_one("#history-user", Input).focus()

    def action_refresh(self) -> None:
        self.reload()

    @work(group="export")
    async def action_export(self) -> None:
        user = self.user
        if user is None:
            self.notify("open a user's history first", severity="warning", markup=False)
            return
        target = await self.app.push_screen_wait(
            PromptDialog(f"Export the history of {user} as Markdown to:", value=default_export_path(user))
        )
        if not target:
            return
        try:
            path, exists = await asyncio.to_thread(_resolve, target)
        except RuntimeError as exc:  # ~someone who does not exist
            self.notify(f"cannot export to {target}: {exc}", severity="error", markup=False)
            return
        if exists and not await self.app.push_screen_wait(
            ConfirmDialog(f"{path} already exists. Overwrite it?", yes="Overwrite")
        ):
            self.say(f"kept {path} as it was (e to export under another name)", severity="warning")
            return
        markdown = await self.call(f"export the history of {user}", self.client.history_markdown(user))
        if markdown is None:
            return
        try:
            await asyncio.to_thread(_write, path, markdown)
        except OSError as exc:
            self.notify(f"could not write {path}: {exc.strerror or exc}", severity="error", markup=False)
            return
        self.say(f"wrote the history of {user} to {path}")

    def say(self, said: str, severity: SeverityLevel = "information") -> None:
        """Tell the operator how an export went, in a notification and on the page's status line."""
        self.query_one("#history-status", Static).update(visible(said))
        self.notify(said, severity=severity, markup=False)


def _resolve(target: str) -> tuple[Path, bool]:
    """`target` as an absolute path (~ expanded), and whether something is there already."""
    path = Path(target).expanduser().absolute()
    return path, path.exists()


def _write(path: Path, text: str) -> None:
    """Write `text` to `path`, making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
