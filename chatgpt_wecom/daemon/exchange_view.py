"""The read side of exchanges: the one shape the control API, the TUI and the signed history page show.

The store keeps its own row type (it does not depend on the wire format); this module turns those rows into
`protocol.Exchange` — channel identity included — and renders a history as Markdown (the `ctl history --format md`
export and the page's .md download are the same text).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, tzinfo

from chatgpt_wecom import protocol as p
from chatgpt_wecom.daemon.store.history import StoredExchange


def as_wire(rows: Iterable[StoredExchange]) -> list[p.Exchange]:
    return [
        p.Exchange(
            id=x.id, user_id=x.user_id, mode=x.mode, question=x.question, answer=x.answer, error=x.error,
            model=x.model, prompt_tokens=x.prompt_tokens, completion_tokens=x.completion_tokens,
            asked_at=x.asked_at, answered_at=x.answered_at, namespace=x.namespace, chat=x.chat,
            feedback=x.feedback, inbox_id=x.inbox_id,
        )
        for x in rows
    ]  # fmt: skip


def history_markdown(user: str, items: list[p.Exchange], zone: tzinfo | None = None) -> str:
    """A user's history as Markdown, times in `zone` (the daemon's time zone)."""
    lines = [f"# Conversation history of {user}", "", f"Times are in {zone or 'the server’s local time'}.", ""]
    for x in items:
        when = datetime.fromtimestamp(x.asked_at, zone).strftime("%Y-%m-%d %H:%M:%S")
        where = "" if x.chat in ("", x.user_id) else f" · in {x.chat}"
        lines += [f"## {when} · {x.mode}{where}", "", "**Q:**", "", x.question, ""]
        lines += ["**A:**", "", x.answer if x.answer is not None else f"_(no answer: {x.error})_", ""]
    return "\n".join(lines)
