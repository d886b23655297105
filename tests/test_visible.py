"""`visible`: what users wrote is shown, spelled out where a terminal would obey it; JSON keeps its values."""

from __future__ import annotations

import json
import unicodedata

import pytest

from chatgpt_wecom.visible import visible, visible_json

HOSTILE = [
    ("\x1b[2J", "\\x1b[2J"),  # clear the screen
    ("\x1b]52;c;aGk=\x07", "\\x1b]52;c;aGk=\\x07"),  # OSC 52: write the clipboard
    ("\x9b31m", "\\x9b31m"),  # C1 CSI
    ("\x9d0;t\x9c", "\\x9d0;t\\x9c"),  # C1 OSC … ST
    ("a\x7fb\x00c\x08", "a\\x7fb\\x00c\\x08"),
    ("exe.\u202egnp", "exe.<U+202E>gnp"),
    ("\u2066x\u2069\u200e\u200f\u061c", "<U+2066>x<U+2069><U+200E><U+200F><U+061C>"),
    ("line\u2028two", "line<U+2028>two"),
    ("bad \ud800 half", "bad <U+D800> half"),  # a lone surrogate cannot even be printed
]


@pytest.mark.parametrize(("raw", "shown"), HOSTILE)
def test_controls_and_bidi_are_spelled_out(raw: str, shown: str) -> None:
    assert visible(raw) == shown
    assert visible(raw, multiline=True) == shown
    assert visible(shown) == shown  # idempotent: showing twice shows the same


def test_newlines_and_tabs_only_in_multiline_text() -> None:
    assert visible("a\nb\tc\r\nd\re") == "a\\nb\\tc\\r\\nd\\re"
    assert visible("a\nb\tc\r\nd\re", multiline=True) == "a\nb\tc\nd\\re"


def test_ordinary_text_is_untouched() -> None:
    text = "你好，世界！ emoji 👩‍💻 (ZWJ) café [b]markup[/b] C:\\path 𝔘"
    assert visible(text) == text == visible(text, multiline=True)


def test_every_control_and_format_character_that_moves_text_is_covered() -> None:
    spelled = {chr(c) for c in range(0x2100) if visible(chr(c)) != chr(c)}
    controls = {chr(c) for c in range(0x2100) if unicodedata.category(chr(c)) == "Cc"}
    assert controls <= spelled
    assert {"\u202a", "\u202b", "\u202c", "\u202d", "\u202e", "\u2066", "\u2067", "\u2068", "\u2069"} <= spelled


def test_json_is_escaped_and_means_the_same() -> None:
    values = {"q": "".join(raw for raw, _ in HOSTILE[:-1]), "ok": "你好 👩‍💻"}
    dumped = json.dumps(values, ensure_ascii=False)
    shown = visible_json(dumped)
    assert not any(c in shown for c in "\x7f\x9b\x9c\x9d\u202e\u2066\u2028")
    assert json.loads(shown) == values
    assert "你好 👩‍💻" in shown
