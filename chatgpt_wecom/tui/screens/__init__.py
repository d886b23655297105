"""The pages of the operator UI, in the order of their number keys."""

from chatgpt_wecom.tui.screens.base import Context, OperatorScreen
from chatgpt_wecom.tui.screens.history import HistoryScreen
from chatgpt_wecom.tui.screens.live import LiveScreen
from chatgpt_wecom.tui.screens.logs import LogScreen
from chatgpt_wecom.tui.screens.playground import PlaygroundScreen
from chatgpt_wecom.tui.screens.quotas import QuotasScreen
from chatgpt_wecom.tui.screens.status import StatusScreen
from chatgpt_wecom.tui.screens.users import UsersScreen
from chatgpt_wecom.tui.screens.words import WordsScreen

# name → (key, title, class); the name is also the `--screen` value and the Textual mode.
PAGES: dict[str, tuple[str, str, type[OperatorScreen]]] = {
    "live": ("1", "Live", LiveScreen),
    "users": ("2", "Users", UsersScreen),
    "words": ("3", "Words", WordsScreen),
    "quotas": ("4", "Quotas", QuotasScreen),
    "history": ("5", "History", HistoryScreen),
    "playground": ("6", "Playground", PlaygroundScreen),
    "status": ("7", "Status", StatusScreen),
    "log": ("8", "Log", LogScreen),
}

__all__ = ["PAGES", "Context", "OperatorScreen"]
