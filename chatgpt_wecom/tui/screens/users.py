"""Users: the four access lists side by side; add or remove a user, each after a confirmation."""

from __future__ import annotations

from typing import ClassVar

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from chatgpt_wecom import protocol as p
from chatgpt_wecom.tui.screens.base import OperatorScreen
from chatgpt_wecom.tui.screens.dialogs import ConfirmDialog, PromptDialog
from chatgpt_wecom.visible import visible

MEANING: dict[p.ListName, str] = {
    "allow": "empty = everyone",
    "deny": "never answered",
    "vip": "no daily quota",
    "admin": "commands, no limit",
}


class UsersScreen(OperatorScreen):
    """Four OptionLists; ←/→ move between them, a adds to the focused list, d removes the highlighted user."""

    PAGE_TITLE = "Users"
    HOME = "#list-allow"
    RELOAD_ON = frozenset({"policy.changed", "config.reloaded"})
    BINDINGS: ClassVar = [
        Binding("a", "add", "Add user"),
        Binding("d,delete", "remove", "Remove user"),
        Binding("left", "move(-1)", "Prev list", show=False),
        Binding("right", "move(1)", "Next list", show=False),
        Binding("ctrl+r", "refresh", "Refresh"),
    ]

    def compose_body(self) -> ComposeResult:
        yield Static(
            "←/→ choose a list · a add · d remove · every change asks first. "
            "A non-empty allow list admits only its members; deny wins over allow; admins are always admitted.",
            classes="hint",
        )
        with Horizontal(id="user-lists"):
            for name in p.LIST_NAMES:
                box = OptionList(id=f"list-{name}", markup=False)
                box.border_title = name
                box.border_subtitle = MEANING[name]
                yield box

    def focused_list(self) -> p.ListName:
        """The list that has the focus (allow when none has)."""
        focused = self.focused
        if isinstance(focused, OptionList) and focused.id and focused.id.startswith("list-"):
            name = focused.id.removeprefix("list-")
            for known in p.LIST_NAMES:
                if known == name:
                    return known
        return "allow"

    async def load(self) -> None:
        lists = await self.call("load the lists", self.client.lists)
        if lists is None:
            return
        for name in p.LIST_NAMES:
            self.show_list(name, getattr(lists, name))

    def show_list(self, name: p.ListName, users: list[str]) -> None:
        """Replace the options of one list, keeping the highlight where it was when possible."""
        box = self.query_one(f"#list-{name}", OptionList)
        before = box.highlighted
        box.clear_options()
        box.add_options([Option(visible(user), id=user) for user in users])
        box.border_title = f"{name} ({len(users)})"
        if users:
            box.highlighted = min(before or 0, len(users) - 1)

    def action_move(self, step: int) -> None:
        index = p.LIST_NAMES.index(self.focused_list())
        self.query_one(f"#list-{p.LIST_NAMES[(index + step) % len(p.LIST_NAMES)]}", OptionList).focus()

    def action_refresh(self) -> None:
        self.reload()

    @work(group="change")
    async def action_add(self) -> None:
        name = self.focused_list()
        user = await self.app.push_screen_wait(PromptDialog(f"Add a user id to the {name} list:", placeholder="UserID"))
        if not user:
            return
        question = f"Add {user!r} to the {name} list?"
        first_allow = name == "allow" and self.query_one("#list-allow", OptionList).option_count == 0
        if first_allow:  # the daemon refuses it unconfirmed (confirm_needed): this dialog is the confirmation
            question = (
                f"The allow list is empty, so everyone may chat. Once {user!r} is on it, only the users on it and "
                "admins may — everyone else gets deny_reply. Add anyway?"
            )
        if not await self.app.push_screen_wait(ConfirmDialog(question, yes="Add")):
            return
        done = await self.call(f"add {user} to {name}", self.client.add_users, name, [user], confirm=first_allow)
        if done is not None:
            self.notify(f"added {user} to {name}" if done.changed else f"{user} was already in {name}", markup=False)
            self.reload()

    @work(group="change")
    async def action_remove(self) -> None:
        name = self.focused_list()
        box = self.query_one(f"#list-{name}", OptionList)
        if box.highlighted is None or box.option_count == 0:
            self.notify(f"the {name} list is empty", severity="warning", markup=False)
            return
        user = str(box.get_option_at_index(box.highlighted).id)
        if not await self.app.push_screen_wait(ConfirmDialog(f"Remove {user!r} from the {name} list?", yes="Remove")):
            return
        done = await self.call(f"remove {user} from {name}", self.client.remove_users, name, [user])
        if done is not None:
            self.notify(f"removed {user} from {name}" if done.changed else f"{user} was not in {name}", markup=False)
            self.reload()
