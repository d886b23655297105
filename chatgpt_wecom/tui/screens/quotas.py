"""Quotas & usage: who used how much today and this month — and every other user the daemon knows, at nought, so
any of them can be found (type to narrow the table) and given a fresh day; reset one user's day or everyone's."""

from __future__ import annotations

import asyncio
import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from chatgpt_wecom import protocol as p
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog
from chatgpt_wecom.visible import visible

COLUMNS = (("user", 20), ("today", 12), ("questions (month)", 18), ("tokens (month)", 16), ("limit", 10))
DIRECTORY_TTL = 30.0  # seconds the user directory is reused by reloads that events cause (it is a bigger query)


class QuotasScreen(OperatorScreen):
    """A table of users active this month (most used today first), then everyone else the daemon knows."""

    PAGE_TITLE = "Quotas & usage"
    HOME = "#quota-table"
    RELOAD_ON = frozenset({"policy.changed", "config.reloaded", "message.done"})
    BINDINGS: ClassVar = [
        Binding("slash", "focus_filter", "Filter", show=False),  # the field says "(/)": the footer must fit 80 columns
        Binding("r", "reset_user", "Reset user"),
        Binding("R", "reset_all", "Reset all"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.quotas: p.Quotas | None = None
        self.directory: p.Users | None = None
        self._directory_at = 0.0  # monotonic time it was fetched

    def compose_body(self) -> ComposeResult:
        yield Static("", id="quota-summary", markup=False)
        with Horizontal(id="quota-bar", classes="toolbar"):
            yield Label("user ", classes="field-label")
            yield Input(placeholder="filter by user id or name (/)", id="quota-filter")
        yield DataTable(id="quota-table", cursor_type="row", zebra_stripes=True)
        yield Static("r: fresh quota today for the highlighted user · R: for everyone (both ask first)", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name, width in COLUMNS:
            table.add_column(name, width=width, key=name)

    def on_screen_resume(self) -> None:
        self._directory_at = 0.0  # shown again: everyone, afresh
        self.reload()

    async def load(self) -> None:
        fresh = self.directory is None or time.monotonic() - self._directory_at > DIRECTORY_TTL
        quotas, directory = await asyncio.gather(
            self.call("load the quotas", self.client.quotas),
            self.call("load the users", self.client.users) if fresh else _none(),
        )
        if directory is not None:
            self.directory, self._directory_at = directory, time.monotonic()
        if quotas is not None:
            self.quotas = quotas
            self.show(quotas)

    def show(self, quotas: p.Quotas) -> None:
        """Fill the summary and the table, keeping the cursor on the same user when possible."""
        limit = f"{quotas.limit} questions a day" if quotas.limit > 0 else "no daily limit"
        rows = self.rows(quotas)
        needle = self.query_one("#quota-filter", Input).value.strip().casefold()
        names = self.names()
        shown = [u for u in rows if not needle or needle in u.user_id.casefold() or needle in names.get(u.user_id, "")]
        known = f"{len(rows)} known" + (f", {len(shown)} shown" if needle else "")
        self.query_one("#quota-summary", Static).update(
            f"day {quotas.day} ({quotas.timezone}) · {limit} · {len(quotas.users)} users active this month, {known}"
        )
        table = self.query_one(DataTable)
        current = self.highlighted_user()
        table.clear()
        for u in shown:
            full = quotas.limit > 0 and not u.unlimited and u.used_today >= quotas.limit
            today = f"{u.used_today}/{quotas.limit}" if quotas.limit > 0 and not u.unlimited else str(u.used_today)
            table.add_row(
                Text(visible(u.user_id)),  # DataTable parses plain strings as markup
                Text(today, "bold red" if full else ""),
                str(u.questions_month),
                str(u.tokens_month),
                "unlimited" if u.unlimited else "",
                key=u.user_id,
            )
        if current is not None and current in table.rows:
            table.move_cursor(row=table.get_row_index(current))

    def rows(self, quotas: p.Quotas) -> list[p.UserQuota]:
        """This month's users as the daemon counts them, then the rest of the directory (nothing used)."""
        rows = list(quotas.users)
        seen = {u.user_id.casefold() for u in rows}
        for person in self.directory.users if self.directory is not None else []:
            if person.user_id.casefold() in seen:
                continue
            seen.add(person.user_id.casefold())
            unlimited = quotas.limit <= 0 or bool({"vip", "admin"} & set(person.lists))
            rows.append(p.UserQuota(user_id=person.user_id, used_today=0, questions_month=0, tokens_month=0,
                                    unlimited=unlimited))  # fmt: skip
        return rows

    def names(self) -> dict[str, str]:
        """The names users go by (casefolded, for the filter), by user id."""
        names: dict[str, str] = {}
        for person in self.directory.users if self.directory is not None else []:
            if person.name:
                names[person.user_id] = f"{names.get(person.user_id, '')} {person.name.casefold()}"
        return names

    def on_input_changed(self, event: Input.Changed) -> None:
        if self.quotas is not None:
            self.show(self.quotas)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_home()

    def action_focus_filter(self) -> None:
        self.query_one("#quota-filter", Input).focus()

    def highlighted_user(self) -> str | None:
        """The user on the cursor row, if any."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_refresh(self) -> None:
        self._directory_at = 0.0
        self.reload()

    @work(group="change")
    async def action_reset_user(self) -> None:
        user = self.highlighted_user()
        if user is None:
            self.notify("no user highlighted", severity="warning", markup=False)
            return
        if await self.app.push_screen_wait(ConfirmDialog(f"Give {user!r} a fresh quota for today?", yes="Reset")):
            await self._reset(user)

    @work(group="change")
    async def action_reset_all(self) -> None:
        if await self.app.push_screen_wait(ConfirmDialog("Give EVERY user a fresh quota for today?", yes="Reset all")):
            await self._reset(None)

    async def _reset(self, user: str | None) -> None:
        done = await self.call(f"reset the quota of {user or 'everyone'}", self.client.reset_quota, user)
        if done is not None:
            self.notify(f"quota reset for {user or 'everyone'} ({done.cleared} questions cleared)", markup=False)
            self.reload()


async def _none() -> None:
    return None
