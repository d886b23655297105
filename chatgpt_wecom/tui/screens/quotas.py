"""Quotas & usage: who used how much today and this month; reset one user's day or everyone's."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import DataTable, Static

from chatgpt_wecom import protocol as p
from chatgpt_wecom.tui.screens.base import OperatorScreen
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog
from chatgpt_wecom.visible import visible

COLUMNS = (("user", 20), ("today", 12), ("questions (month)", 18), ("tokens (month)", 16), ("limit", 10))


class QuotasScreen(OperatorScreen):
    """A table of users active this month (most used today first)."""

    PAGE_TITLE = "Quotas & usage"
    HOME = "#quota-table"
    RELOAD_ON = frozenset({"policy.changed", "config.reloaded", "message.done"})
    BINDINGS: ClassVar = [
        Binding("r", "reset_user", "Reset user"),
        Binding("R", "reset_all", "Reset all"),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static("", id="quota-summary", markup=False)
        yield DataTable(id="quota-table", cursor_type="row", zebra_stripes=True)
        yield Static("r: fresh quota today for the highlighted user · R: for everyone (both ask first)", classes="hint")

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name, width in COLUMNS:
            table.add_column(name, width=width, key=name)

    async def load(self) -> None:
        quotas = await self.call("load the quotas", self.client.quotas())
        if quotas is not None:
            self.show(quotas)

    def show(self, quotas: p.Quotas) -> None:
        """Fill the summary and the table, keeping the cursor on the same user when possible."""
        limit = f"{quotas.limit} questions a day" if quotas.limit > 0 else "no daily limit"
        self.query_one("#quota-summary", Static).update(
            f"day {quotas.day} ({quotas.timezone}) · {limit} · {len(quotas.users)} users active this month"
        )
        table = self.query_one(DataTable)
        current = self.highlighted_user()
        table.clear()
        for u in quotas.users:
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

    def highlighted_user(self) -> str | None:
        """The user on the cursor row, if any."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return None
        return table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value

    def action_refresh(self) -> None:
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
        done = await self.call(f"reset the quota of {user or 'everyone'}", self.client.reset_quota(user))
        if done is not None:
            self.notify(f"quota reset for {user or 'everyone'} ({done.cleared} questions cleared)", markup=False)
            self.reload()
