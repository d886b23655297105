"""Text from the daemon and its users, made visible and harmless for an operator's terminal.

A WeCom user chooses the words of a question, and through the model partly those of the answer; the operator
reads them in `ctl` and the TUI. Raw, they could drive the terminal: ESC and CSI sequences (clear the screen,
move the cursor, OSC 52 writes the clipboard), the 8-bit C1 controls some terminals obey, DEL, and Unicode bidi
controls that make a line read differently from what it holds. Here each becomes a visible, inert spelling —
`\\x1b`, `\\x9b`, `\\x7f`, `\\r`, `<U+202E>` — and the rest of the text is left as it is (Chinese, emoji, zero
width joiners). A backslash is not escaped: `\\x1b` typed by a user looks like an ESC shown, harmlessly.

Used by both `ctl` and the TUI (neither imports the daemon). JSON output is escaped with `visible_json`.
"""

from __future__ import annotations

_BIDI = (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
_SEPARATORS = (0x2028, 0x2029)  # line and paragraph separators: a "line" of output must stay one line
_NAMED = {0x09: "\\t", 0x0A: "\\n", 0x0D: "\\r"}


def _table(*, multiline: bool) -> dict[int, str]:
    table = {c: _NAMED.get(c, f"\\x{c:02x}") for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))}
    table.update({c: f"<U+{c:04X}>" for c in (*_BIDI, *_SEPARATORS, *range(0xD800, 0xE000))})  # lone surrogates
    if multiline:
        del table[0x09], table[0x0A]
    return table


_ONE_LINE = _table(multiline=False)
_LINES = _table(multiline=True)
# Characters a JSON encoder leaves raw but a terminal may obey; JSON escapes C0 itself. `\uXXXX` is valid JSON
# for any of them, and they can only occur inside strings (JSON's own syntax is ASCII).
_JSON = {c: f"\\u{c:04x}" for c in (0x7F, *range(0x80, 0xA0), *_BIDI, *_SEPARATORS)}


def visible(text: str, *, multiline: bool = False) -> str:
    """`text` with every control and bidi character spelled out. `multiline` keeps newlines and tabs (a CR
    before a newline is dropped); otherwise they are spelled out too, so one line stays one line."""
    if multiline:
        return text.replace("\r\n", "\n").translate(_LINES)
    return text.translate(_ONE_LINE)


def visible_json(text: str) -> str:
    """A JSON document with the characters a terminal could obey written as `\\uXXXX` escapes (same value)."""
    return text.translate(_JSON)
