"""Small widgets shared by the screens."""

from chatgpt_wecom.tui.widgets.link_bar import LinkBar, LinkState

__all__ = ["LinkBar", "LinkState"]
