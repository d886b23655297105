"""Live: questions and answers as they happen, one row per message — who, from which channel and group, what,
how it went; filter by user; bounded to the last 500."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import DataTable, Input, Label, Markdown, Static

from chatgpt_wecom.channel_text import group_of, message_from
from chatgpt_wecom.protocol import Event, Exchange
from chatgpt_wecom.tui import formats as fmt
from chatgpt_wecom.tui.live import FEEDBACK_MARKS, LIMIT, LiveLog, LiveRow
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.visible import visible

# (name, least width, priority): columns are shown by priority while they fit — at 80 columns all but latency and
# tokens — and the room left widens the question and the answer (the detail pane shows both in full).
COLUMNS = (
    ("time", 8, 0), ("user", 10, 1), ("from", 16, 3), ("question", 11, 4), ("answer", 10, 5), ("state", 9, 2),
    ("latency", 7, 6), ("tokens", 9, 7),
)  # fmt: skip
FROM_WIDTH = 16
FLEX = ("question", "answer")  # the columns that take the room left over
CENSORED_MARK = " 🚫"  # on the state of an answer in which words were masked


def fit_columns(width: int) -> list[tuple[str, int]]:
    """The columns that fit a table `width` cells wide (each cell has one cell of padding either side), by
    priority, in table order, with the room left shared between the question and the answer."""
    room = width - 2  # the vertical scrollbar
    chosen: set[str] = set()
    for name, least, _ in sorted(COLUMNS, key=lambda c: c[2]):
        if least + 2 > room:
            break  # lower priorities do not jump the queue
        chosen.add(name)
        room -= least + 2
    widths = {name: least for name, least, _ in COLUMNS if name in chosen}
    flex = [name for name in FLEX if name in chosen]
    for n, name in enumerate(flex):
        widths[name] += room // len(flex) + (1 if n < room % len(flex) else 0)
    return [(name, widths[name]) for name, _, _ in COLUMNS if name in chosen]


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
        Binding("t", "retry", "Retry", show=False),  # offered in the detail of a row whose delivery is retrying
    ]

    def __init__(self, ctx: Context, limit: int = LIMIT) -> None:
        super().__init__(ctx)
        self.log_rows = LiveLog(limit)
        self.user_filter = ""
        self.follow = True
        self._stale = True  # the table does not show the log (not mounted yet, or not current)
        self.columns: list[tuple[str, int]] = []  # shown now (as the width allows)
        self._detail: tuple[object, ...] = ()  # what the detail pane shows (redrawn only when it changes)

    def compose_body(self) -> ComposeResult:
        with Horizontal(id="live-bar", classes="toolbar"):
            yield Label("user ", classes="field-label")
            yield Input(placeholder="filter by user id (/)", id="live-filter")
            yield Label("", id="live-count", classes="counter")
        yield DataTable(id="live-table", cursor_type="row", zebra_stripes=True)
        with VerticalScroll(id="live-detail"):
            yield Static("", id="live-detail-head", markup=False)
            yield Markdown("", id="live-detail-body")

    def on_mount(self) -> None:
        self._fit(self.size.width or 120)

    def on_resize(self, event: events.Resize) -> None:
        self._fit(event.size.width)

    def _fit(self, width: int) -> None:
        """Show the columns that fit `width` (the table's margin aside); redraw when they change."""
        columns = fit_columns(width - 2)
        if columns == self.columns:
            return
        self.columns = columns
        table = self.query_one(DataTable)
        table.clear(columns=True)
        for name, size in columns:
            table.add_column(name, width=size, key=name)
        if self.is_current and not self._stale:
            self.rebuild()
        else:
            self._stale = True  # redrawn when the page is shown again

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
                for (name, _), value in zip(self.columns, self._cells(row), strict=True):
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
        state += FEEDBACK_MARKS.get(row.feedback or "", "") + (CENSORED_MARK if row.censored else "")
        question = fmt.one_line(row.question, 60) if row.msg_type == "text" else f"[{visible(row.msg_type)}]"
        user = visible(row.user) + (" ▶" if row.source == "playground" else "")
        where = Text(message_from(row.channel, row.chat, row.user), no_wrap=True)
        where.truncate(FROM_WIDTH, overflow="ellipsis")  # a cut group id says so (cells: 技术群 is 6 wide)
        cells = {
            "time": Text(self.ctx.formats.clock(row.at)),
            "user": Text(user),
            "from": where,
            "question": Text(question),
            "answer": Text(fmt.one_line(row.answer or "", 80)),
            "state": Text(state, STATE_STYLES.get(row.state.split(" ", 1)[0], "")),
            "latency": Text(fmt.latency(row.latency)),
            "tokens": Text(fmt.tokens(row.prompt_tokens, row.completion_tokens)),
        }
        return tuple(cells[name] for name, _ in self.columns)

    # --- detail of the highlighted row ---------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_detail(event.data_table)

    def _show_detail(self, table: DataTable[object]) -> None:
        """The highlighted row in full: who, where, how it went, the question, and the answer as the user got it
        (rendered as Markdown, scrollable)."""
        if not table.row_count:
            self._detail_show(("waiting",), "Waiting for messages… (questions and answers appear here as they happen)")
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        row = self.log_rows.rows.get(int(key)) if key is not None else None
        if row is None:
            self._detail_show((), "")
            return
        group = group_of(row.chat, row.user)
        where = " · ".join([row.channel or "…", *([f"in {group}"] if group is not None else [])])
        head = visible(f"#{row.inbox_id} {row.user} · {where} · {row.mode or '…'} · {row.state}")
        if row.error:
            head += f" · error: {visible(row.error)}"
            if row.state == "retrying":
                head += " · t: try delivering now"
        if row.feedback:
            head += f" · rated{FEEDBACK_MARKS[row.feedback]}"
        if row.censored:
            head += " · censored: the user got 🚫 in place of blocked words"
        question = visible(row.question, multiline=True)
        head += f"\nQ: {question}\nA:"
        answer = visible(row.answer, multiline=True) if row.answer is not None else "…"
        self._detail_show((row.inbox_id, head, answer), head, answer)

    def _detail_show(self, key: tuple[object, ...], head: str, answer: str = "") -> None:
        if key == self._detail:
            return
        moved = key[:1] != self._detail[:1]
        self._detail = key
        self.query_one("#live-detail-head", Static).update(head)
        self.query_one("#live-detail-body", Markdown).update(answer)
        if moved:
            self.query_one("#live-detail", VerticalScroll).scroll_home(animate=False)

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

    def action_retry(self) -> None:
        """Deliver the highlighted user's waiting answers now (after fixing what blocked them)."""
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value
        row = self.log_rows.rows.get(int(key)) if key is not None else None
        if row is not None:
            self.retry_deliveries(row.user)

    def action_clear(self) -> None:
        self.log_rows.clear()
        self.rebuild()
