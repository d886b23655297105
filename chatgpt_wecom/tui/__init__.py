"""The operator's terminal UI: a Textual app that talks to the daemon only through its control socket.

from chatgpt_wecom.tui import run_tui
run_tui(Path("data/control.sock"), screen="playground")
"""

from chatgpt_wecom.tui.app import SCREEN_NAMES, OperatorApp, make_app, run_tui

__all__ = ["SCREEN_NAMES", "OperatorApp", "make_app", "run_tui"]
