"""Tests for chatgpt_wecom.daemon.chat.words: the banned-word filter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chatgpt_wecom.daemon.chat.words import REPLACEMENT, WordFilter

X = REPLACEMENT

# --- Building ---


def test_words_are_stripped_deduplicated_case_insensitively_and_sorted() -> None:
    f = WordFilter(["  bad ", "BAD", "Bad", "敏感词", "\t敏感词\n", "abc"])
    assert f.words == ("abc", "bad", "敏感词")  # the first spelling of each is kept


def test_whitespace_only_and_empty_words_are_ignored() -> None:
    f = WordFilter(["", " ", "\t\n", "\u3000", "bad"])  # U+3000: the ideographic (full-width) space
    assert f.words == ("bad",)
    assert f
    assert not WordFilter(["", "  ", "\u3000"])


def test_the_filter_does_not_depend_on_its_input_afterwards() -> None:
    words = ["bad"]
    f = WordFilter(iter(words))  # any iterable, read once
    words.append("good")
    assert f.words == ("bad",)
    assert f.find("good bad") == ["bad"]


@pytest.mark.parametrize("f", [WordFilter([]), WordFilter(["", "   "])])
def test_an_empty_filter_is_a_no_op(f: WordFilter) -> None:
    assert not f
    assert f.words == ()
    assert f.find("anything at all 敏感词") == []
    assert f.censor("anything at all 敏感词") == "anything at all 敏感词"
    assert f.censor("") == ""


# --- find ---


def test_find_returns_distinct_words_in_order_of_first_appearance() -> None:
    f = WordFilter(["alpha", "beta", "gamma", "delta"])
    assert f.find("gamma then alpha, gamma again, beta") == ["gamma", "alpha", "beta"]
    assert f.find("nothing here") == []
    assert f.find("") == []


def test_find_orders_by_start_then_end() -> None:
    f = WordFilter(["bc", "abcd", "ab"])
    assert f.find("abcd") == ["ab", "abcd", "bc"]


def test_find_reports_the_filters_spelling() -> None:
    assert WordFilter(["Bad Word"]).find("a bAD wORD here") == ["Bad Word"]


def test_find_chinese_words() -> None:
    f = WordFilter(["敏感词", "违禁", "测试"])
    assert f.find("这句话里有违禁内容，还有一个敏感词。") == ["违禁", "敏感词"]
    assert f.find("这句话很正常") == []


# --- censor ---


def test_censor_replaces_every_occurrence_of_every_word() -> None:
    # The Go project replaced only the first word found.
    f = WordFilter(["bad", "worse"])
    assert f.censor("bad, worse, bad and worse") == f"{X}, {X}, {X} and {X}"


def test_censor_chinese() -> None:
    f = WordFilter(["敏感词", "违禁"])
    assert f.censor("敏感词和违禁品，又是敏感词。") == f"{X}和{X}品，又是{X}。"


def test_censor_is_case_insensitive_and_keeps_the_rest_as_it_was() -> None:
    f = WordFilter(["bad"])
    assert f.censor("Hello BAD World, bAd Thing") == f"Hello {X} World, {X} Thing"


@pytest.mark.parametrize(
    ("words", "text", "expected"),
    [
        (["ab", "abc"], "xabcx", f"x{X}x"),  # nested
        (["abc", "b"], "xabcx", f"x{X}x"),  # nested, inner one inside
        (["abc", "bcd"], "abcd!", f"{X}!"),  # overlapping
        (["ab", "bc", "cd"], "abcde", f"{X}e"),  # a chain of overlaps is one run
        (["aa"], "aaaa", X),  # a word overlapping itself
        (["bad"], "badbad", X + X),  # touching, not overlapping: one per occurrence
        (["ab", "cd"], "abcd", X + X),
    ],
)
def test_censor_merges_overlapping_occurrences(words: list[str], text: str, expected: str) -> None:
    assert WordFilter(words).censor(text) == expected


def test_censor_leaves_text_without_words_unchanged() -> None:
    f = WordFilter(["bad"])
    text = "A perfectly fine answer. 完全正常的回答。"
    assert f.censor(text) == text


def test_astral_characters_do_not_shift_indices() -> None:
    f = WordFilter(["bad", "𝔘x"])
    assert f.censor("😀bad😀𝔘x😀") == f"😀{X}😀{X}😀"


def test_a_word_containing_the_replacement_itself() -> None:
    assert WordFilter([f"a{X}"]).censor(f"a{X}a{X}") == X + X


# --- Case folding that changes lengths ---


def test_sharp_s_folds_to_ss_both_ways() -> None:
    f = WordFilter(["straße"])
    assert f.find("STRASSE") == ["straße"]
    assert f.censor("Die Straße, die STRASSE, die strasse.") == f"Die {X}, die {X}, die {X}."
    assert WordFilter(["STRASSE"]).censor("in der Straße") == f"in der {X}"


def test_a_match_inside_a_lengthened_character_covers_the_whole_character() -> None:
    # "Straße" folds to "strasse": "s" matches at the "S" and twice inside the "ß".
    assert WordFilter(["s"]).censor("Straße") == f"{X}tra{X}e"


def test_indices_after_a_lengthened_character_stay_right() -> None:
    f = WordFilter(["bad"])
    assert f.censor("Maße ﬁne BAD ok ß") == f"Maße ﬁne {X} ok ß"  # "ﬁ" (U+FB01) folds to "fi"
    assert WordFilter(["fine"]).censor("a ﬁne day") == f"a {X} day"


def test_turkish_dotted_capital_i() -> None:
    # "İ" folds to "i" + U+0307 (combining dot above), so "İstanbul" matches its own folds…
    f = WordFilter(["İstanbul"])
    assert f.censor("Visit İSTANBUL! i\u0307stanbul.") == f"Visit {X}! {X}."
    # …but not a dotless-capital spelling, and "istanbul" does not match "İSTANBUL" (no Turkish locale rules).
    assert f.find("ISTANBUL") == []
    assert WordFilter(["istanbul"]).find("İSTANBUL") == []
    # A match of the plain "i" inside the folded "İ" covers the whole "İ".
    assert WordFilter(["i"]).censor("İx") == f"{X}x"


def test_full_width_latin_folds_case_but_not_to_ascii() -> None:
    f = WordFilter(["Ｗｏｒｄ"])
    assert f.censor("ＷＯＲＤ ｗｏｒｄ Word") == f"{X} {X} Word"
    assert WordFilter(["word"]).find("Ｗｏｒｄ") == []


def test_cjk_mixed_with_latin() -> None:
    f = WordFilter(["敏感Word", "违禁"])
    assert f.censor("这是敏感WORD和违禁，Fine。") == f"这是{X}和{X}，Fine。"


# --- Properties ---

# A small alphabet so that words occur often, with characters whose folds are longer ("ß", "İ", "ﬁ").
ALPHABET = "abAB ßsSİiﬁf敏感🚫"
texts = st.text(alphabet=ALPHABET, max_size=40)
word_lists = st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=4), max_size=6)


@given(word_lists, texts)
def test_censored_text_contains_no_word(words: list[str], text: str) -> None:
    f = WordFilter(words)
    censored = f.censor(text).casefold()
    for word in f.words:
        if REPLACEMENT not in word:
            assert word.casefold() not in censored


@given(word_lists, texts)
def test_find_agrees_with_a_naive_search(words: list[str], text: str) -> None:
    f = WordFilter(words)
    assert set(f.find(text)) == {word for word in f.words if word.casefold() in text.casefold()}
    assert len(f.find(text)) == len(set(f.find(text)))


@given(word_lists, texts)
def test_text_without_any_word_is_unchanged(words: list[str], text: str) -> None:
    f = WordFilter(word for word in words if word.strip().casefold() not in text.casefold())
    assert f.find(text) == []
    assert f.censor(text) == text


def _naive_censor(words: tuple[str, ...], text: str) -> str:
    """Reference for texts whose folding keeps their length: mark every occurrence, merge overlapping ones."""
    folded = text.casefold()
    spans = sorted(
        (start, start + len(w))
        for w in (word.casefold() for word in words)
        for start in range(len(folded))
        if folded.startswith(w, start)
    )
    merged: list[list[int]] = []
    for start, end in spans:
        if merged and start < merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    out, done = [], 0
    for start, end in merged:
        out += [text[done:start], REPLACEMENT]
        done = end
    return "".join([*out, text[done:]])


@given(
    st.lists(st.text(alphabet="abAB敏感🚫", min_size=1, max_size=3), max_size=6),
    st.text(alphabet="abAB 敏感🚫", max_size=40),
)
def test_censor_agrees_with_a_naive_reference(words: list[str], text: str) -> None:
    f = WordFilter(words)
    assert f.censor(text) == _naive_censor(f.words, text)
