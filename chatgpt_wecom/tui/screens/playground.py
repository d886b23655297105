"""Playground: send a message as any user id through the real pipeline and watch the answer arrive."""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Input, Label, Static

from chatgpt_wecom.protocol import Event
from chatgpt_wecom.tui import formats as fmt
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.visible import visible

DEFAULT_USER = "playground"
KEEP = 100  # turns kept on screen
EARLY = 200  # inbox ids whose events are kept until our POST returns


class Turn(Static):
    """One question and, once `reply.stored` arrives for its inbox id, the answer."""

    def __init__(self, user: str, question: str) -> None:
        super().__init__(classes="turn")
        self.user = user
        self.question = question
        self.inbox_id: int | None = None
        self.answer: str | None = None
        self.state = "sending…"
        self.meta = ""

    def on_mount(self) -> None:
        self.update(self.render_turn())

    def render_turn(self) -> Text:
        """The question, then the answer or what is happening."""
        text = Text.assemble((f"{visible(self.user)} ▶ ", "bold cyan"), visible(self.question, multiline=True))
        if self.answer is not None:
            text.append("\n◀ ", "bold green")
            text.append(visible(self.answer, multiline=True))
            if self.meta:
                text.append(f"\n   {visible(self.meta)}", "dim")
        else:
            text.append(f"\n   {visible(self.state)}", "dim italic")
        return text

    def apply(self, event: Event) -> None:
        """Fold one event for this turn's inbox id."""
        data = event.data
        if event.kind == "answer.started":
            self.state = f"the model is answering ({data.get('mode', '')})…"
        elif event.kind == "answer.finished":
            self.meta = f"{fmt.latency(data.get('latency'))} · {data.get('prompt_tokens', 0)}+" + (
                f"{data.get('completion_tokens', 0)} tokens"
            )
        elif event.kind == "reply.stored":
            self.answer = str(data.get("text", ""))
        elif event.kind == "error":
            self.meta = f"error: {data.get('error', '')}"
        elif event.kind == "delivery.failed" and data.get("final"):
            self.meta += f" · not delivered to WeCom: {data.get('error', '')}"
        if self.is_mounted:
            self.update(self.render_turn())


class PlaygroundScreen(OperatorScreen):
    """Two inputs (user id, message); Enter sends; the transcript shows answers as their events arrive."""

    PAGE_TITLE = "Playground"
    HOME = "#play-transcript"
    START = "#play-text"
    BINDINGS: ClassVar = [
        Binding("i", "focus_text", "Message"),
        Binding("u", "focus_user", "User id"),
        Binding("ctrl+l", "clear", "Clear"),
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.turns: dict[int, Turn] = {}
        # Events that came before the daemon's answer to our POST (the pipeline can be that fast).
        self._early: OrderedDict[int, list[Event]] = OrderedDict()

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Messages go through the real pipeline (access lists, quota, commands, the model) — and "
            + (
                "in the demo the answer goes to the built-in WeCom stand-in, nobody real."
                if self.ctx.demo
                else "the answer is also SENT to that WeCom user."
            ),
            classes="hint warning",
            id="play-banner",
        )
        yield Static("Tab: user id ⇄ message · Enter sends · Esc leaves the inputs (1–7 switch pages)", classes="hint")
        with Horizontal(classes="toolbar"):
            yield Label("as user ", classes="field-label")
            yield Input(DEFAULT_USER, id="play-user", classes="short")
            yield Label(" message ", classes="field-label")
            yield Input(placeholder="type a message, Enter to send", id="play-text")
        yield VerticalScroll(id="play-transcript")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "play-user":
            self.query_one("#play-text", Input).focus()
            return
        user = self.query_one("#play-user", Input).value.strip() or DEFAULT_USER
        text = event.value.strip()
        if not text:
            return
        event.input.value = ""
        self.send(user, text)

    @work(group="send")
    async def send(self, user: str, text: str) -> None:
        """Post the message and add its turn to the transcript."""
        turn = Turn(user, text)
        transcript = self.query_one("#play-transcript", VerticalScroll)
        await transcript.mount(turn)
        transcript.scroll_end(animate=False)
        accepted = await self.call("send the message", self.client.playground(user, text))
        if accepted is None:
            turn.state = "not sent"
            turn.update(turn.render_turn())
            return
        turn.inbox_id = accepted.inbox_id
        turn.state = f"queued as #{accepted.inbox_id}…"
        turn.update(turn.render_turn())
        self.turns[accepted.inbox_id] = turn
        for early in self._early.pop(accepted.inbox_id, []):
            turn.apply(early)
        while len(self.turns) > KEEP:
            old = next(iter(self.turns))
            await self.turns.pop(old).remove()

    def ingest(self, events: list[Event]) -> None:
        for event in events:
            inbox_id = event.data.get("inbox_id")
            if not isinstance(inbox_id, int):
                continue
            turn = self.turns.get(inbox_id)
            if turn is not None:
                turn.apply(event)
            else:
                self._early.setdefault(inbox_id, []).append(event)
                while len(self._early) > EARLY:
                    self._early.popitem(last=False)
        if events and self.is_current:
            self.query_one("#play-transcript", VerticalScroll).scroll_end(animate=False)

    def action_focus_text(self) -> None:
        self.query_one("#play-text", Input).focus()

    def action_focus_user(self) -> None:
        self.query_one("#play-user", Input).focus()

    async def action_clear(self) -> None:
        self.turns.clear()
        await self.query_one("#play-transcript", VerticalScroll).remove_children()
