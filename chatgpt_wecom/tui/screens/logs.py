"""Log: the daemon's recent log lines (it keeps the last ~2,000, secrets masked), new ones as they come, filtered by
level. Polls `GET /v1/logs?since=…` while the page is shown (once a second): log lines stay off the event stream,
so a chatty log never crowds out the events the other pages live on."""

from __future__ import annotations

import logging
from collections import deque
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Label, RichLog

from chatgpt_wecom.protocol import LogLine
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.visible import visible

KEEP = 2000  # lines kept here (as many as the daemon keeps)
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")  # the filter's steps: this level and above
STYLES = {"DEBUG": "dim", "INFO": "", "WARNING": "yellow", "ERROR": "bold red", "CRITICAL": "bold red reverse"}
RANK = {"DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARNING": logging.WARNING, "ERROR": logging.ERROR,
        "CRITICAL": logging.CRITICAL}  # fmt: skip
POLL = 1.0  # seconds between asks while the page is shown


class LogScreen(OperatorScreen):
    """The log, newest last; `l` steps the least level shown (DEBUG → INFO → WARNING → ERROR)."""

    PAGE_TITLE = "Log"
    HOME = "#log-lines"
    BINDINGS: ClassVar = [
        Binding("l", "next_level", "Level"),
        Binding("f", "toggle_follow", "Follow"),
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.lines: deque[LogLine] = deque(maxlen=KEEP)
        self.last_seq = 0
        self.level = "INFO"
        self.follow = True

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Label("", id="log-level")
            yield Label("", id="log-count", classes="counter")
        yield RichLog(id="log-lines", max_lines=KEEP, wrap=True, markup=False, highlight=False, auto_scroll=True)

    def on_mount(self) -> None:
        self._show_level()
        self.set_interval(POLL, self.reload, name="poll the daemon's log")

    def reload(self) -> None:
        if self.is_current:
            super().reload()

    async def load(self) -> None:
        got = await self.call("read the daemon's log", self.client.logs, since=self.last_seq)
        if got is None:
            return
        if got.last_seq < self.last_seq:  # a new daemon: its numbers start again
            self.lines.clear()
            self.last_seq = 0
            self._redraw()
            got = await self.call("read the daemon's log", self.client.logs) or got
        new = [line for line in got.lines if line.seq > self.last_seq]
        self.last_seq = max(self.last_seq, got.last_seq)
        if not new:
            return
        self.lines.extend(new)
        view = self.query_one(RichLog)
        for line in new:
            if self._shown(line):
                view.write(self._text(line), expand=True, scroll_end=self.follow)
        self._count()

    def _shown(self, line: LogLine) -> bool:
        return RANK.get(line.level, logging.INFO) >= RANK[self.level]

    def _text(self, line: LogLine) -> Text:
        text = Text(f"{self.ctx.formats.stamp(line.at)} ", "dim")
        text.append(f"{line.level:<7} ", STYLES.get(line.level, ""))
        text.append(f"{visible(line.logger)}: ", "dim")
        text.append(visible(line.message, multiline=True), STYLES.get(line.level, "") if line.level != "INFO" else "")
        return text

    def _redraw(self) -> None:
        view = self.query_one(RichLog)
        view.clear()
        for line in self.lines:
            if self._shown(line):
                view.write(self._text(line), expand=True, scroll_end=self.follow)
        self._count()

    def _count(self) -> None:
        shown = sum(1 for line in self.lines if self._shown(line))
        self.query_one("#log-count", Label).update(f"{shown} of {len(self.lines)} lines")

    def _show_level(self) -> None:
        self.query_one("#log-level", Label).update(
            Text.assemble(("level ", "dim"), (f"{self.level} and above", "bold"), ("  (l: next level)", "dim"))
        )

    def action_next_level(self) -> None:
        self.level = LEVELS[(LEVELS.index(self.level) + 1) % len(LEVELS)]
        self._show_level()
        self._redraw()

    def action_toggle_follow(self) -> None:
        self.follow = not self.follow
        self.query_one(RichLog).auto_scroll = self.follow
        self.notify("following new lines" if self.follow else "not following (f to follow again)", markup=False)
