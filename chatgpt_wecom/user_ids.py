"""What an entry of the user lists (allow, deny, VIP, admin) may be: one rule for config.yml and the live edits.

A WeCom userid is 1–64 letters, digits and `_ - . @`; a DingTalk staff id uses the same characters, fewer of
them. An entry is such an id (that id in every namespace) or `namespace:id` (that person only). An entry that
breaks the rule can never match anyone; on an allow list it would lock everyone out, so it is refused with a
sentence that says why — "alice bob" is two ids typed as one.
"""

from __future__ import annotations

import re

MAX_USER_ID = 64  # WeCom: a userid is 1–64 characters; DingTalk's staff ids are shorter
_ID_CHARS = re.compile(r"[A-Za-z0-9_.@-]+")
_NAMESPACE = re.compile(r"[a-z][a-z0-9_]{0,31}")


def _printable(text: str) -> str:
    """`text` with what a terminal would act on (controls, bidi overrides) written as U+XXXX."""
    return "".join(c if c.isprintable() else f"U+{ord(c):04X}" for c in text)


ARGUMENTS = " (give several ids as separate arguments)"  # how ctl takes several ids


def user_id_problem(entry: str, several: str = ARGUMENTS) -> str | None:
    """Why `entry` cannot be a list entry, as one sentence; None when it can. `several` is added when the entry
    looks like several ids in one (a space or a comma in it): how to give them where the entry came from.

    An entry is a user id — WeCom's (letters, digits, `_ - . @`, at most 64 characters) or a DingTalk staff id (the
    same characters, fewer of them) — or `namespace:id` for that person only (`dingtalk:manager1234`)."""
    shown = _printable(entry if len(entry) <= 24 else entry[:23] + "…")
    namespace, sep, user = entry.partition(":")
    if sep and not _NAMESPACE.fullmatch(namespace):
        return f"“{shown}”: before “:” must come a namespace such as wecom or dingtalk (lower-case letters)"
    if not sep:
        user = entry
    if not user.strip():
        return "an empty user id was given" if not sep else f"“{shown}” names no user after “{namespace}:”"
    if len(user) > MAX_USER_ID:
        return f"“{shown}” has {len(user)} characters; a user id has at most {MAX_USER_ID}"
    if not _ID_CHARS.fullmatch(user):
        bad = next(c for c in user if not _ID_CHARS.fullmatch(c))
        what = {" ": "a space", ",": "a comma", "，": "a comma", ":": "a second “:”"}.get(bad, f"“{_printable(bad)}”")
        hint = several if bad in " ,，;" else ""
        return f"“{shown}” holds {what}, which no user id has — only letters, digits and _ - . @{hint}"
    return None
