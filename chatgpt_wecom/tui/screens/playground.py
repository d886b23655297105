"""Playground: send a message as any user id of any configured channel through the real pipeline and watch the
answer arrive. With several channels a picker chooses one (the first by default); with one, it is named."""

from __future__ import annotations

from collections import OrderedDict
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Input, Label, Markdown, Select, Static, TextArea

from chatgpt_wecom.protocol import Event, Status
from chatgpt_wecom.tui import formats as fmt
from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.visible import visible

DEFAULT_USER = "playground"
KEEP = 100  # turns kept on screen
EARLY = 200  # inbox ids whose events are kept until our POST returns


class Turn(Vertical):
    """One question and its answer as the user gets it: part by part as the parts are delivered, then whole once
    `reply.stored` arrives for its inbox id (rendered as Markdown). `channel` is the one asked for (None: the
    daemon's first) until `message.received` says which one took the message."""

    def __init__(self, user: str, question: str, channel: str | None = None) -> None:
        super().__init__(classes="turn")
        self.user = user
        self.question = question
        self.channel = channel
        self.inbox_id: int | None = None
        self.answer: str | None = None  # the whole answer as the user got it (censored), once stored
        self.delivered: list[str] = []  # the messages delivered so far (a long answer goes out in parts)
        self.censored = False
        self.state = "sending…"
        self.meta = ""
        self._shown: str | None = None

    def compose(self) -> ComposeResult:
        yield Static(self._head(), classes="turn-question")
        yield Markdown("", classes="turn-answer")
        yield Static("", classes="turn-meta")

    def on_mount(self) -> None:
        self.refresh_turn()

    def _head(self) -> Text:
        who = visible(self.user) + (f" · {visible(self.channel)}" if self.channel else "")
        return Text.assemble((f"{who} ▶ ", "bold cyan"), visible(self.question, multiline=True))

    @property
    def shown(self) -> str | None:
        """The answer so far: whole once stored, else the parts delivered (None: nothing yet)."""
        if self.answer is not None:
            return self.answer
        return "\n\n".join(self.delivered) if self.delivered else None

    def refresh_turn(self) -> None:
        """Show the question, the answer so far, and what is happening or how it went."""
        if not self.is_mounted:
            return
        self.query_one(".turn-question", Static).update(self._head())
        shown = self.shown
        if shown != self._shown:
            self._shown = shown
            self.query_one(".turn-answer", Markdown).update(visible(shown, multiline=True) if shown else "")
        meta = Text()
        if self.censored:
            meta.append("censored: the user got 🚫 in place of blocked words", "bold yellow")
        if self.answer is None:
            state = self.state + (f" ({len(self.delivered)} parts so far)" if self.delivered else "")
            meta.append((" · " if meta else "") + visible(state), "dim italic")
        elif self.meta:
            meta.append((" · " if meta else "") + visible(self.meta), "dim")
        self.query_one(".turn-meta", Static).update(meta)

    def apply(self, event: Event) -> None:
        """Fold one event for this turn's inbox id."""
        data = event.data
        if event.kind == "message.received" and data.get("channel"):
            self.channel = str(data["channel"])
        elif event.kind == "answer.started":
            self.state = f"the model is answering ({data.get('mode', '')})…"
        elif event.kind == "answer.finished":
            self.meta = f"{fmt.latency(data.get('latency'))} · {data.get('prompt_tokens', 0)}+" + (
                f"{data.get('completion_tokens', 0)} tokens"
            )
        elif event.kind == "delivery.sent" and isinstance(data.get("text"), str):
            self.delivered.append(data["text"])
        elif event.kind == "reply.stored":
            self.answer = str(data.get("text", ""))
            self.censored = data.get("censored") is True
        elif event.kind == "error":
            self.meta = f"error: {data.get('error', '')}"
        elif event.kind == "delivery.failed" and data.get("final"):
            self.meta += f" · not delivered to {self.channel or 'the user'}: {data.get('error', '')}"
        self.refresh_turn()


class PlaygroundScreen(OperatorScreen):
    """The user id, the channel, and a message box that takes several lines (templates like `#解释代码` with code);
    Ctrl+S sends (Ctrl+Enter too, where the terminal tells it from Enter). The transcript shows answers as their
    events arrive. The channels come from the daemon's status (they change only with a restart).

    Sending is idempotent per draft: the box is emptied as the draft is taken, and nothing more is sent while it is
    in flight — a key repeat or a laggy session cannot send one draft twice. The draft stays in the box across Tab
    and page switches (the page is kept, not rebuilt).
    """

    PAGE_TITLE = "Playground"
    HOME = "#play-transcript"
    START = "#play-text"
    BINDINGS: ClassVar = [
        Binding("ctrl+s", "send", "Send", priority=True),
        Binding("ctrl+enter", "send", "Send", show=False, priority=True),
        # Said in the hint line above the fields (the footer fits 80 columns); listed in the keys panel (?).
        Binding("i", "focus_text", "Message", show=False),
        Binding("u", "focus_user", "User id", show=False),
        Binding("c", "focus_channel", "Channel", show=False),
        Binding("ctrl+l", "clear", "Clear"),
    ]

    def __init__(self, ctx: Context) -> None:
        super().__init__(ctx)
        self.turns: dict[int, Turn] = {}
        self.channels: list[str] = []  # configured, in the daemon's order (the first is its default)
        self.sending = False  # a draft is on its way: more sends wait for it
        # Events that came before the daemon's answer to our POST (the pipeline can be that fast).
        self._early: OrderedDict[int, list[Event]] = OrderedDict()

    def compose_body(self) -> ComposeResult:
        yield Static(
            "Messages go through the real pipeline (access lists, quota, commands, the model) — and "
            + (
                "in the demo the answer goes to the built-in WeCom stand-in, nobody real."
                if self.ctx.demo
                else "the answer is also SENT to that user, on that channel."
            ),
            classes="hint warning",
            id="play-banner",
        )
        yield Static(
            "Ctrl+S sends · Enter: new line · Tab: user id → channel → message → transcript · "
            "Esc leaves the inputs (then i/u/c: message/user id/channel, 1–8: pages)",
            classes="hint",
        )
        with Horizontal(classes="toolbar"):
            yield Label("as user ", classes="field-label")
            yield Input(DEFAULT_USER, id="play-user", classes="short")
            yield Label(" on ", classes="field-label")
            with Horizontal(id="play-on"):
                yield Label("…", id="play-channel-name")  # until the daemon says which channels there are
        area = TextArea(id="play-text", soft_wrap=True, tab_behavior="focus", show_line_numbers=False)
        area.placeholder = "type a message (several lines welcome) — Ctrl+S sends"
        yield area
        yield VerticalScroll(id="play-transcript")

    async def load(self) -> None:
        status = await self.call("load the channels", self.client.status)
        if status is not None:
            await self.show_channels(status)

    async def show_channels(self, status: Status) -> None:
        """Name the one channel, or offer a picker of several (keeping the operator's choice across reloads)."""
        names = [c.name for c in status.channels]
        if names == self.channels:
            return
        chosen = self.channel
        self.channels = names
        box = self.query_one("#play-on", Horizontal)
        await box.remove_children()
        if len(names) > 1:
            options = [(visible(name), name) for name in names]
            value = chosen if chosen in names else names[0]
            await box.mount(Select(options, value=value, allow_blank=False, compact=True, id="play-channel"))
        else:
            await box.mount(Label(visible(names[0]) if names else "…", id="play-channel-name"))

    @property
    def channel(self) -> str | None:
        """The channel the next message goes to (None: not known yet — the daemon takes its first)."""
        for picker in self.query("#play-channel").results(Select):
            return picker.value if isinstance(picker.value, str) else None
        return self.channels[0] if self.channels else None

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if event.input.id == "play-user":
            self.query_one("#play-text", TextArea).focus()

    def action_send(self) -> None:
        """Send the draft in the message box once: it is taken from the box, and while it is on its way further
        sends do nothing (a burst of the key sends one message)."""
        if self.sending:
            return
        area = self.query_one("#play-text", TextArea)
        text = area.text.strip()
        if not text:
            return
        self.sending = True
        area.load_text("")
        user = self.query_one("#play-user", Input).value.strip() or DEFAULT_USER
        self.send(user, text, self.channel)

    @work(group="send")
    async def send(self, user: str, text: str, channel: str | None = None) -> None:
        """Post the message as `user` of `channel` and add its turn to the transcript."""
        try:
            turn = Turn(user, text, channel)
            transcript = self.query_one("#play-transcript", VerticalScroll)
            await transcript.mount(turn)
            transcript.scroll_end(animate=False)
            accepted = await self.call("send the message", self.client.playground, user, text, channel)
        finally:
            self.sending = False
        if accepted is None:
            turn.state = "not sent (the draft is back in the box)"
            turn.refresh_turn()
            area = self.query_one("#play-text", TextArea)
            if not area.text.strip():
                area.load_text(text)
            return
        turn.inbox_id = accepted.inbox_id
        turn.state = f"queued as #{accepted.inbox_id}…"
        turn.refresh_turn()
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
        self.query_one("#play-text", TextArea).focus()

    def action_focus_user(self) -> None:
        self.query_one("#play-user", Input).focus()

    def action_focus_channel(self) -> None:
        for picker in self.query("#play-channel").results(Select):
            picker.focus()
            return
        only = f"only one channel is configured: {self.channels[0]}" if self.channels else "no channel known yet"
        self.notify(only, markup=False)

    async def action_clear(self) -> None:
        self.turns.clear()
        await self.query_one("#play-transcript", VerticalScroll).remove_children()
