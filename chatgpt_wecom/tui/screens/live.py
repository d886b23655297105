"""Live: questions and answers as they happen, one row per message — who, from which channel and group, what,
how it went; filter by user; bounded to the last 500."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import DataTable, Input, Label, Static

from chatgpt_wecom.channel_text import group_of, message_from
from chatgpt_wecom.protocol import Event, Exchange
from chatgpt_wecom.tui import formats as fmt
from chatgpt_wecom.tui.live import FEEDBACK_MARKS, LIMIT, LiveLog, LiveRow
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.visible import visible

# Every column fits in 120 columns beside a scrollbar; at 80, time, user, from and the question show.
COLUMNS = (
    ("time", 8), ("user", 10), ("from", 16), ("question", 22), ("answer", 20), ("state", 8), ("latency", 7),
    ("tokens", 9),
)  # fmt: skip
FROM_WIDTH = dict(COLUMNS)["from"]
STATE_STYLES = {
    "done": "green", "sent": "green", "failed": "bold red", "error": "red", "retrying": "yellow", "waiting": "yellow",
}  # fmt: skip
# A state with a detail ("sent 1/3", "waiting 40s") is styled by its first word.


class LiveScreen(OperatorScreen):
    """The live log. Events are folded into a `LiveLog`; only the rows a batch touched are redrawn."""

    PAGE_TITLE = "Live"
    HOME = "#live-table"
    BINDINGS: ClassVar = [
        Binding("slash", "focus_filter", "Filter user"),
        Binding("f", "toggle_follow", "Follow"),
        Binding("c", "clear", "Clear"),
    ]

    def __init__(self, ctx: Context, limit: int = LIMIT) -> None:
        super().__init__(ctx)
        self.log_rows = LiveLog(limit)
        self.user_filter = ""
        self.follow = True
        self._stale = True  # the table does not show the log (not mounted yet, or not current)

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="live-bar", classes="toolbar"):
            yield Label("user ", classes="field-label")
            yield Input(placeholder="filter by user id (/)", id="live-filter")
            yield Label("", id="live-count", classes="counter")
        yield DataTable(id="live-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="live-detail", markup=False)

    def on_mount(self) -> None:
        table = self.query_one(DataTable)
        for name, width in COLUMNS:
            table.add_column(name, width=width, key=name)

    def on_screen_resume(self) -> None:
        if self._stale:
            self.rebuild()

    def ingest(self, events: list[Event]) -> None:
        changes = self.log_rows.ingest(events)
        if not changes:
            return
        if not self.is_current or self._stale:
            self._stale = True
            return
        table = self.query_one(DataTable)
        for inbox_id in changes.evicted:
            key = str(inbox_id)
            if key in table.rows:
                table.remove_row(key)
        for inbox_id in changes.touched:
            row = self.log_rows.rows[inbox_id]
            if not self._matches(row):
                continue
            key = str(inbox_id)
            if key in table.rows:
                for (name, _), value in zip(COLUMNS, self._cells(row), strict=True):
                    table.update_cell(key, name, value)
            else:
                table.add_row(*self._cells(row), key=key)
        self._after_change(table)

    def settle(self, exchanges: list[Exchange]) -> None:
        if self.log_rows.settle(exchanges):
            self._stale = True
            if self.is_current:
                self.rebuild()

    def rebuild(self) -> None:
        """Redraw the whole table from the log (after a filter change or coming back to the page)."""
        table = self.query_one(DataTable)
        table.clear()
        for row in self.log_rows.rows.values():
            if self._matches(row):
                table.add_row(*self._cells(row), key=str(row.inbox_id))
        self._stale = False
        self._after_change(table)

    def _after_change(self, table: DataTable[object]) -> None:
        if self.follow and table.row_count:
            table.move_cursor(row=table.row_count - 1)
        shown = f"{table.row_count} of {len(self.log_rows)}" if self.user_filter else f"{table.row_count}"
        counter = f"{shown} messages" + ("" if self.follow else " · not following")
        self.query_one("#live-count", Label).update(counter, layout=False)  # fixed size: no relayout per batch
        self._show_detail(table)

    def _matches(self, row: LiveRow) -> bool:
        return not self.user_filter or self.user_filter in row.user.casefold()

    def _cells(self, row: LiveRow) -> tuple[Text, ...]:
        """The row's cells, as Text: DataTable parses plain strings as markup, and these come from WeCom users."""
        state = row.state if row.error is None or row.state in ("error", "failed") else f"{row.state} ⚠"
        state += FEEDBACK_MARKS.get(row.feedback or "", "")
        question = fmt.one_line(row.question, 60) if row.msg_type == "text" else f"[{visible(row.msg_type)}]"
        user = visible(row.user) + (" ▶" if row.source == "playground" else "")
        where = Text(message_from(row.channel, row.chat, row.user), no_wrap=True)
        where.truncate(FROM_WIDTH, overflow="ellipsis")  # a cut group id says so (cells: 技术群 is 6 wide)
        return (
            Text(self.ctx.formats.clock(row.at)),
            Text(user),
            where,
            Text(question),
            Text(fmt.one_line(row.answer or "", 80)),
            Text(state, STATE_STYLES.get(row.state.split(" ", 1)[0], "")),
            Text(fmt.latency(row.latency)),
            Text(fmt.tokens(row.prompt_tokens, row.completion_tokens)),
        )

    # --- detail of the highlighted row ---------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.data_table)

    def _show_detail(self, table: DataTable[object]) -> None:
        detail = self.query_one("#live-detail", Static)
        if not table.row_count:
            detail.update("Waiting for messages… (questions and answers appear here as they happen)", layout=False)
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        row = self.log_rows.rows.get(int(key)) if key is not None else None
        if row is None:
            detail.update("", layout=False)
            return
        group = group_of(row.chat, row.user)
        where = " · ".join([row.channel or "…", *([f"in {group}"] if group is not None else [])])
        head = visible(f"#{row.inbox_id} {row.user} · {where} · {row.mode or '…'} · {row.state}")
        if row.error:
            head += f" · error: {visible(row.error)}"
        if row.feedback:
            head += f" · rated{FEEDBACK_MARKS[row.feedback]}"
        question = visible(row.question, multiline=True)
        answer = visible(row.answer, multiline=True) if row.answer is not None else "…"
        detail.update(f"{head}\nQ: {question}\nA: {answer}", layout=False)

    # --- keys ----------------------------------------------------------------------------------------
    def on_input_changed(self, event: Input.Changed) -> None:
        self.user_filter = event.value.strip().casefold()
        self.rebuild()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_home()

    def action_focus_filter(self) -> None:
        self.query_one("#live-filter", Input).focus()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.notify("following new messages" if self.follow else "not following (f to follow again)", markup=False)
        self._after_change(self.query_one(DataTable))

    def action_clear(self) -> None:
        self.log_rows.clear()
        self.rebuild()
