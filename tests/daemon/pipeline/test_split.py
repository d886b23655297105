"""Tests for chatgpt_wecom.daemon.pipeline.split.split_message."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chatgpt_wecom.daemon.pipeline.split import split_message

_FENCE_RE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_CUT_WS = " \t\r\n"  # the only whitespace the splitter may drop at a cut


def nbytes(s: str) -> int:
    return len(s.encode("utf-8"))


def open_fence_after(text: str) -> str | None:
    """Independent fence parser (same rules as the module doc): marker still open at the end."""
    marker: str | None = None
    for line in text.split("\n"):
        m = _FENCE_RE.match(line)
        if marker is None:
            if m and len(m[1]) <= 8 and not (m[1][0] == "`" and "`" in m[2]):
                marker = m[1]
        elif m and m[1][0] == marker[0] and len(m[1]) >= len(marker) and not m[2].strip(" \t\r"):
            marker = None
    return marker


def _core_candidates(part: str) -> list[str]:
    """The part itself, and the part minus a leading reopened / trailing closing fence line."""
    cands = [part]
    lines = part.split("\n")
    head = len(lines) > 1 and _FENCE_RE.match(lines[0]) is not None
    tail = len(lines) > 1 and _FENCE_RE.fullmatch(lines[-1].rstrip(" \t\r")) is not None
    if head:
        cands.append("\n".join(lines[1:]))
    if tail:
        cands.append("\n".join(lines[:-1]))
    if head and tail and len(lines) > 2:
        cands.append("\n".join(lines[1:-1]))
    return cands


def _match_after_gap(text: str, pos: int, core: str) -> int | None:
    """End of ``core`` if it occurs at ``pos`` after a gap made only of cut whitespace."""
    while True:
        if text.startswith(core, pos):
            return pos + len(core)
        if pos < len(text) and text[pos] in _CUT_WS:
            pos += 1
        else:
            return None


def assert_reassembles(text: str, parts: list[str]) -> None:
    """Strict invariant: each part (minus added fence lines) is a verbatim slice of ``text``,
    the slices are in order, and everything between/around them is cut whitespace."""
    if not text.strip():
        assert parts == []
        return
    positions = {0}
    for i, part in enumerate(parts):
        found = {
            end
            for core in _core_candidates(part)
            for pos in positions
            if (end := _match_after_gap(text, pos, core)) is not None
        }
        assert found, f"part {i} {part[:60]!r}... is not the next slice of the text"
        positions = found
    assert any(text[p:].strip(_CUT_WS) == "" for p in positions), "text left over after the last part"


def check_basic(text: str, parts: list[str], limit: int) -> None:
    for part in parts:
        assert part, "empty part"
        assert nbytes(part) <= limit
        part.encode("utf-8").decode("utf-8")  # valid UTF-8 (no lone surrogates)
    assert_reassembles(text, parts)


def zh_sentence(i: int) -> str:
    return f"第{i:04d}句：大语言模型的回答常常很长，需要按照企业微信的字节限制拆分成多条消息发送。"


def zh_paragraph(p: int, sentences: int) -> str:
    return "".join(zh_sentence(p * 100 + k) for k in range(sentences))


# --- edge cases --------------------------------------------------------------------------------


def test_limit_too_small() -> None:
    with pytest.raises(ValueError):
        split_message("hello", 63)
    assert split_message("hello", 64) == ["hello"]


@pytest.mark.parametrize("text", ["", " ", "\n\n\t  \n", "\u3000 \n"])
def test_blank_text(text: str) -> None:
    assert split_message(text) == []


def test_fitting_text_is_returned_unchanged() -> None:
    text = "  hello\n\n world  \n"
    assert split_message(text) == [text]


def test_exactly_at_limit_and_one_byte_over() -> None:
    line = "一二三四五六七八九十" * 3 + "\n"  # 91 bytes
    text = line * 22 + "x" * (2048 - 22 * 91)
    assert nbytes(text) == 2048
    assert split_message(text) == [text]
    over = text + "y"
    parts = split_message(over)
    assert len(parts) == 2
    assert parts[0] == (line * 22).rstrip("\n")
    assert parts[1] == "x" * (2048 - 22 * 91) + "y"
    check_basic(over, parts, 2048)


# --- Chinese prose -----------------------------------------------------------------------------


def test_15kb_chinese_answer_paragraphs_kept_whole() -> None:
    paras = [zh_paragraph(p, 5) for p in range(24)]  # 605 bytes each, 14.5 KB in all
    text = "\n\n".join(paras)
    total = nbytes(text)
    assert 14_000 < total < 16_000
    parts = split_message(text)
    check_basic(text, parts, 2048)
    assert len(parts) <= math.ceil(total / (2048 * 0.5))
    # three paragraphs (3 * ~660 + 4 bytes) fit, four do not: the parts are exactly those groups
    assert 3 * nbytes(paras[0]) + 4 <= 2048 < 4 * nbytes(paras[0])
    assert parts == ["\n\n".join(paras[i : i + 3]) for i in range(0, len(paras), 3)]
    assert len(parts) == 8


def test_long_chinese_paragraph_cut_after_sentence_end() -> None:
    text = "".join(zh_sentence(i) for i in range(200))  # ~26 KB, no newlines
    parts = split_message(text)
    check_basic(text, parts, 2048)
    assert "".join(parts) == text  # nothing dropped: cuts fall right after 。
    for part in parts[:-1]:
        assert part.endswith("。")
        assert part.startswith("第")
        assert nbytes(part) > 2048 - nbytes(zh_sentence(999))  # greedy: as full as a sentence allows
    assert len(parts) == math.ceil(nbytes(text) / (2048 - nbytes(zh_sentence(999))))


def test_english_sentences_and_words() -> None:
    sentence = "The quick brown fox jumps over the lazy dog again and again. "
    text = sentence * 100
    parts = split_message(text, 500)
    check_basic(text, parts, 500)
    assert all(p.endswith("again.") for p in parts[:-1])
    words = "word " * 400  # no sentence ends: cut at spaces
    parts = split_message(words, 100)
    check_basic(words, parts, 100)
    assert all(set(p.split()) == {"word"} for p in parts)


def test_paragraph_boundary_skipped_when_it_would_leave_a_small_part() -> None:
    text = "短段落。" * 10 + "\n\n" + "长句子内容很多，" * 200 + "结束。"
    parts = split_message(text, 2048)
    check_basic(text, parts, 2048)
    assert nbytes(parts[0]) > 1024  # did not stop at the early blank line


# --- no boundaries at all ----------------------------------------------------------------------


def test_single_10kb_word_ascii_fills_parts_exactly() -> None:
    text = "x" * 10_240
    parts = split_message(text)
    check_basic(text, parts, 2048)
    assert [nbytes(p) for p in parts] == [2048] * 5
    assert "".join(parts) == text


def test_single_10kb_word_cjk_parts_as_full_as_possible() -> None:
    text = "字" * 3414  # 10242 bytes
    parts = split_message(text)
    check_basic(text, parts, 2048)
    assert "".join(parts) == text
    assert all(nbytes(p) == 2046 for p in parts[:-1])  # 682 chars: a 683rd would need 2049 bytes
    assert len(parts) == 6


def test_emoji_at_the_boundary() -> None:
    text = "a" * 2046 + "😀" * 600
    parts = split_message(text)
    check_basic(text, parts, 2048)
    assert "".join(parts) == text
    assert parts[0] == "a" * 2046
    assert parts[1] == "😀" * 512


def test_combining_mark_and_variation_selector_stay_with_their_base() -> None:
    text = "e" * 2047 + "\u0301" + "x" * 100
    parts = split_message(text)
    assert parts == ["e" * 2046, "e\u0301" + "x" * 100]
    heart = "\u2764\ufe0f"  # ❤️ = U+2764 (3 bytes) + VS16 (3 bytes)
    text = "b" * 2045 + heart + "y" * 10
    parts = split_message(text)
    assert parts == ["b" * 2045, heart + "y" * 10]


# --- code fences -------------------------------------------------------------------------------


def test_long_python_fence_is_closed_and_reopened_with_language() -> None:
    code = [f"    result_{i} = compute(value_{i}, option='x')  # step {i}" for i in range(120)]
    text = "下面是代码：\n\n```python\ndef main():\n" + "\n".join(code) + "\n```\n\n以上。"
    parts = split_message(text, 1024)
    check_basic(text, parts, 1024)
    assert len(parts) >= 5
    for i, part in enumerate(parts):
        assert open_fence_after(part) is None, f"part {i} leaves a fence open"
        if 0 < i < len(parts) - 1:
            assert part.startswith("```python\n")
            assert part.endswith("\n```")
    seen = [ln for part in parts for ln in part.split("\n") if ln.startswith("    result_")]
    assert seen == code  # every code line intact, in order, exactly once
    assert parts[-1].endswith("```\n\n以上。")


def test_fence_after_prose_starts_a_new_part_rather_than_an_empty_block() -> None:
    text = "说明文字。" * 100 + "\n```js\n" + "let a = 1;\n" * 100 + "```"
    parts = split_message(text, 1024)
    check_basic(text, parts, 1024)
    for part in parts:
        assert open_fence_after(part) is None
        assert "```js\n```" not in part


def test_tilde_fence_and_long_code_line() -> None:
    text = "~~~text\n" + "z" * 3000 + "\n~~~\ntail"
    parts = split_message(text, 256)
    check_basic(text, parts, 256)
    assert all(open_fence_after(p) is None for p in parts)
    assert all(p.startswith("~~~text\n") for p in parts[1:-1])


def test_unclosed_fence_stays_unclosed_only_in_last_part() -> None:
    text = "```sh\n" + "echo hello world\n" * 300
    parts = split_message(text, 512)
    check_basic(text, parts, 512)
    assert all(open_fence_after(p) is None for p in parts[:-1])
    assert open_fence_after(parts[-1]) == "```"


# --- properties --------------------------------------------------------------------------------

_ALPHABET = st.sampled_from(list("ab xyz.!?;,\n\t`~。！？；，中文字😀👍🏽\u0301\ufe0f\u200d\u3000"))
_CHUNKS = st.one_of(
    st.text(_ALPHABET, max_size=80),
    st.text(max_size=30),
    st.sampled_from(["```", "```python", "~~~", "\n```\n", "\n```js\n", "\n\n", "。", ". "]),
    st.builds(lambda c, n: c * n, st.sampled_from(["中", "a", "😀", " ", "\n", "`"]), st.integers(1, 300)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_CHUNKS, max_size=60).map("".join), st.integers(64, 4096))
def test_property_arbitrary_text(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    check_basic(text, parts, limit)
    if not text.strip():
        assert parts == []
    if nbytes(text) <= limit and text.strip():
        assert parts == [text]


_PROSE = st.text(st.sampled_from(list("ab xyz.!?,。！？中文😀\u0301")), min_size=1, max_size=300)
_LINE = st.one_of(_PROSE, _PROSE, st.just(""), st.sampled_from(["```", "```python", "~~~", "````js"]))


@settings(max_examples=300, deadline=None)
@given(st.lists(_LINE, min_size=10, max_size=120).map("\n".join), st.integers(64, 512))
def test_property_markdown_fences_balanced(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    check_basic(text, parts, limit)
    for part in parts[:-1]:
        assert open_fence_after(part) is None
    if parts:
        assert open_fence_after(parts[-1]) == open_fence_after(text)


@settings(max_examples=200, deadline=None)
@given(st.text(st.sampled_from(list("ab c.。中😀\n")), max_size=3000), st.integers(64, 600))
def test_property_few_parts_without_fences(text: str, limit: int) -> None:
    parts = split_message(text, limit)
    check_basic(text, parts, limit)
    assert len(parts) <= max(1, math.ceil(nbytes(text) / (limit // 2)))
