"""The one-line bar above the footer: connected or not (and why), and whether the bot is paused."""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from chatgpt_wecom.visible import visible


@dataclass(frozen=True, slots=True)
class LinkState:
    """What the bar shows; the app holds the current one in its reactive `link`."""

    connected: bool = False
    reason: str = ""
    connecting: bool = True  # no answer either way yet (start-up)
    paused: bool = False
    version: str = ""
    zone: str = ""  # the zone every time is shown in (the daemon's `timezone`)
    failures: int = 0  # failed tries in a row since the link was last up
    gone: bool = False  # the socket file is not there: no daemon is running


QUIET_AFTER = 3  # failed tries after which the bar says the daemon is down instead of "reconnecting…"


class LinkBar(Static):
    """Follows the app's `link` reactive."""

    DEFAULT_CSS = """
    LinkBar { height: 1; padding: 0 1; background: $panel; }
    LinkBar.-down { background: $error 40%; }
    """

    def on_mount(self) -> None:
        self.watch(self.app, "link", self._show)

    def _show(self, state: LinkState) -> None:
        self.set_class(not state.connected and not state.connecting, "-down")
        self.update(render(state))


def render(state: LinkState) -> Text:
    """The bar's text for `state`."""
    if state.connecting:
        return Text.assemble(("◌ connecting… ", "bold"), (visible(state.reason), "dim"))
    if not state.connected:
        if state.gone or state.failures >= QUIET_AFTER:
            said = "the daemon is not running" if state.gone else "the daemon does not answer"
            return Text.assemble((f"○ {said} ", "bold"), (f"({visible(state.reason)}) — still trying", "dim"))
        return Text.assemble(("○ disconnected — reconnecting… ", "bold"), (f"({visible(state.reason)})", "dim"))
    text = Text.assemble(("● connected", "bold green"))
    if state.version:
        text.append(f" · daemon {state.version}", "dim")
    if state.zone:
        text.append(f" · times in {visible(state.zone)}", "dim")
    if state.paused:
        text.append("  ⏸ BOT PAUSED", "bold yellow")
    return text
