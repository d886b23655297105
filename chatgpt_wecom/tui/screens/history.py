"""History: pick a user — anyone the daemon knows (`GET /v1/users`), narrowed by what is typed — read their whole
conversation — each exchange tagged with its group or namespace when it was not a private WeCom chat — and
export it as Markdown to a file."""

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


def user_label(user_id: str, people: list[p.KnownUser]) -> str:
    """How the picker shows a user id: with the names the channels gave it, and where it is not a WeCom id."""
    names = sorted({u.name for u in people if u.name})
    spaces = sorted({u.namespace for u in people if u.namespace not in ("", "wecom")})
    label = user_id + (f" · {', '.join(names)}" if names else "") + (f" ({', '.join(spaces)})" if spaces else "")
    return visible(label)


def matches(needle: str, user_id: str, people: list[p.KnownUser]) -> bool:
    """Whether `needle` (casefolded) is part of the id or of a name the user goes by."""
    return needle in user_id.casefold() or any(needle in (u.name or "").casefold() for u in people)


def by_user_id(directory: p.Users) -> dict[str, list[p.KnownUser]]:
    """The directory by user id (one id may be a person in several namespaces), ids in alphabetical order."""
    grouped: dict[str, list[p.KnownUser]] = {}
    first: dict[str, str] = {}
    for u in directory.users:
        key = first.setdefault(u.user_id.casefold(), u.user_id)
        grouped.setdefault(key, []).append(u)
    return dict(sorted(grouped.items(), key=lambda item: (item[0].casefold(), item[0])))


class HistoryScreen(OperatorScreen):
    """Everyone the daemon knows on the left (Enter opens one); typing an id narrows the list, Enter opens it."""

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
        self.people: dict[str, list[p.KnownUser]] = {}  # the directory by user id

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="history-body"):
            users = OptionList(id="history-users", markup=False)
            users.border_title = "users"
            yield users
            with Vertical(id="history-main"):
                with Horizontal(classes="toolbar"):
                    yield Label("user ", classes="field-label")
                    yield Input(placeholder="user id or name: narrows the list, Enter opens (/)", id="history-user")
                yield Static("Pick a user on the left (Enter) or type a user id.", id="history-title", markup=False)
                # min_width: wrap at the width shown (RichLog wraps at 78 or more by default: cut at 80 columns)
                yield RichLog(id="history-log", wrap=True, markup=False, auto_scroll=False, min_width=20)
                yield Static("", id="history-status", classes="hint", markup=False)

    async def load(self) -> None:
        directory = await self.call("load the users", self.client.users)
        if directory is not None:
            self.people = by_user_id(directory)
            self.show_users()
        if self.user is not None:
            await self.open_user(self.user)

    def show_users(self) -> None:
        """Fill the list with the users matching what is typed, keeping the highlight where it was."""
        box = self.query_one("#history-users", OptionList)
        needle = self.query_one("#history-user", Input).value.strip().casefold()
        shown = [uid for uid, people in self.people.items() if not needle or matches(needle, uid, people)]
        before = box.highlighted
        box.clear_options()
        box.add_options([Option(user_label(uid, self.people[uid]), id=uid) for uid in shown])
        box.border_title = f"users ({len(shown)} of {len(self.people)})" if needle else f"users ({len(shown)})"
        if shown:
            box.highlighted = min(before or 0, len(shown) - 1)

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id is not None:
            field = self.query_one("#history-user", Input)
            with field.prevent(Input.Changed):  # the pick is shown, not taken as a filter
                field.value = visible(event.option.id)  # an Input shows it raw
            self.show_user(event.option.id)

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_users()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        """Open the id typed — or, when it is no known id and names one user only (a part of the id, a name), them."""
        typed = event.value.strip()
        box = self.query_one("#history-users", OptionList)
        known = {uid.casefold() for uid in self.people}
        if typed.casefold() not in known and box.option_count == 1 and (only := box.get_option_at_index(0).id):
            typed = only
        if typed:
            self.show_user(typed)

    @work(group="load", exclusive=True)
    async def show_user(self, user: str) -> None:
        """Load and show `user`'s conversation."""
        await self.open_user(user)

    async def open_user(self, user: str) -> None:
        """Fetch `user`'s history and render it, oldest first."""
        items = await self.call(f"load the history of {user}", self.client.history, user)
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
        markdown = await self.call(f"export the history of {user}", self.client.history_markdown, user)
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
