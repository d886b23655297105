"""Words: the sensitive-word list; filter it, add words, remove one after a confirmation."""

from __future__ import annotations

import re
from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog, PromptDialog
from chatgpt_wecom.visible import visible


def split_words(text: str) -> list[str]:
    """Words typed by the operator: separated by commas (ASCII or full-width) or newlines."""
    return [w.strip() for w in re.split(r"[,，、\n]", text) if w.strip()]


class WordsScreen(OperatorScreen):
    """Sensitive words are masked in answers and refused in questions."""

    PAGE_TITLE = "Words"
    HOME = "#words-list"
    RELOAD_ON = frozenset({"policy.changed", "config.reloaded"})
    BINDINGS: ClassVar = [
        Binding("a", "add", "Add words"),
        Binding("d,delete", "remove", "Remove word"),
        Binding("slash", "focus_filter", "Filter"),
        Binding("ctrl+r", "refresh", "Refresh", show=False),  # in the keys panel (?): the footer fits 80 columns
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.words: list[str] = []

    def compose_body(self) -> ComposeResult:
        with Horizontal(classes="toolbar"):
            yield Label("filter ", classes="field-label")
            yield Input(placeholder="part of a word (/)", id="words-filter")
            yield Label("", id="words-count", classes="counter")
        box = OptionList(id="words-list", markup=False)
        box.border_title = "sensitive words"
        yield box
        yield Static("a add (comma-separated) · d remove the highlighted word", classes="hint")

    async def load(self) -> None:
        words = await self.call("load the words", self.client.words)
        if words is not None:
            self.words = words.words
            self.show_words()

    def show_words(self) -> None:
        """Show the words that match the filter."""
        needle = self.query_one("#words-filter", Input).value.strip().casefold()
        shown = [w for w in self.words if needle in w.casefold()]
        box = self.query_one("#words-list", OptionList)
        before = box.highlighted
        box.clear_options()
        box.add_options([Option(visible(w), id=w) for w in shown])
        if shown:
            box.highlighted = min(before or 0, len(shown) - 1)
        count = f"{len(shown)} of {len(self.words)}" if needle else f"{len(self.words)}"
        self.query_one("#words-count", Label).update(f"{count} words")

    def on_input_changed(self, event: Input.Changed) -> None:
        self.show_words()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.action_home()

    def action_focus_filter(self) -> None:
        self.query_one("#words-filter", Input).focus()

    def action_refresh(self) -> None:
        self.reload()

    @work(group="change")
    async def action_add(self) -> None:
        text = await self.app.push_screen_wait(PromptDialog("Add sensitive words (comma-separated):"))
        words = split_words(text or "")
        if not words:
            return
        done = await self.call("add words", self.client.add_words, words)
        if done is not None:
            self.notify(f"added {', '.join(done.changed)}" if done.changed else "already in the list", markup=False)
            self.reload()

    @work(group="change")
    async def action_remove(self) -> None:
        box = self.query_one("#words-list", OptionList)
        if box.highlighted is None or box.option_count == 0:
            self.notify("no word highlighted", severity="warning", markup=False)
            return
        word = str(box.get_option_at_index(box.highlighted).id)
        if not await self.app.push_screen_wait(ConfirmDialog(f"Remove the sensitive word {word!r}?", yes="Remove")):
            return
        done = await self.call(f"remove {word}", self.client.remove_words, [word])
        if done is not None:
            self.notify(f"removed {word}" if done.changed else f"{word} was not in the list", markup=False)
            self.reload()
