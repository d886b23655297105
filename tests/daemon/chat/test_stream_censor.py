"""Tests for chatgpt_wecom.daemon.chat.stream_censor: censoring a text that arrives in pieces."""

from __future__ import annotations

import itertools

from hypothesis import given
from hypothesis import strategies as st

from chatgpt_wecom.daemon.chat.stream_censor import StreamCensor
from chatgpt_wecom.daemon.chat.words import REPLACEMENT, WordFilter

X = REPLACEMENT


def released(words: WordFilter, pieces: list[str]) -> list[str]:
    """What each piece released, then what `finish` released."""
    censor = StreamCensor()
    return [censor.feed(piece, words) for piece in pieces] + [censor.finish(words)]


def test_a_word_split_across_two_pieces_is_censored() -> None:
    words = WordFilter(["机密词"])
    assert released(words, ["这是机", "密词。"]) == ["这是", f"{X}。", ""]


def test_only_what_could_begin_a_word_is_held_back() -> None:
    words = WordFilter(["机密词", "secret"])
    censor = StreamCensor()
    assert censor.feed("第一段。\n\n", words) == "第一段。\n\n"  # nothing here can begin a word: all out at once
    assert censor.feed("机密", words) == ""
    assert censor.held == "机密"  # at most the longest word's length less one character
    assert censor.feed("的事，Se", words) == "机密的事，"
    assert censor.held == "Se"  # case-insensitively the beginning of "secret"
    assert censor.feed("e you", words) == "See you"
    assert censor.finish(words) == ""


def test_the_end_of_the_text_releases_what_was_held_back() -> None:
    words = WordFilter(["机密词"])
    censor = StreamCensor()
    assert censor.feed("还有机密", words) == "还有"
    assert censor.finish(words) == "机密"  # not a word after all
    assert censor.held == ""


def test_a_run_of_overlapping_words_is_one_replacement_across_pieces() -> None:
    words = WordFilter(["ab", "bc"])
    assert words.censor("xabc y") == f"x{X} y"  # "ab" and "bc" overlap: one 🚫 for "abc"
    assert released(words, ["xab", "c y"]) == [f"x{X}", " y", ""]  # its 🚫 goes out with "ab"; "c" is swallowed


def test_each_piece_is_censored_with_the_words_in_force_when_it_arrives() -> None:
    """An admin may add or remove a word while an answer streams: the next piece uses the new filter."""
    censor = StreamCensor()
    assert censor.feed("机密在前，", WordFilter(["星期"])) == "机密在前，"
    assert censor.feed("机密在后，星", WordFilter(["机密"])) == f"{X}在后，星"
    assert censor.feed("期", WordFilter(["机密"])) == "期"


def test_lengthened_characters_may_begin_a_word() -> None:
    words = WordFilter(["ssx"])  # "ß" folds to "ss"
    assert released(words, ["aß", "xb"]) == ["a", f"{X}b", ""]


def test_no_words_releases_everything_at_once() -> None:
    assert released(WordFilter([]), ["机", "密"]) == ["机", "密", ""]


# A small alphabet so that words occur often and straddle pieces, with characters whose folds are longer.
ALPHABET = "abAB ßsSİiﬁf敏感🚫"


@given(
    st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=5), max_size=6),
    st.text(alphabet=ALPHABET, max_size=40),
    st.lists(st.integers(min_value=0, max_value=40), max_size=10),
)
def test_pieces_censor_exactly_like_the_whole(words: list[str], text: str, cuts: list[int]) -> None:
    f = WordFilter(words)
    bounds = sorted({0, len(text), *(min(c, len(text)) for c in cuts)})
    pieces = [text[a:b] for a, b in itertools.pairwise(bounds)]
    assert "".join(released(f, pieces)) == f.censor(text)


@given(
    st.lists(st.text(alphabet=ALPHABET, min_size=1, max_size=5), max_size=6),
    st.text(alphabet=ALPHABET, max_size=40),
)
def test_no_more_than_a_word_less_one_character_is_ever_held_back(words: list[str], text: str) -> None:
    f = WordFilter(words)
    longest = max((len(word.casefold()) for word in f.words), default=1)
    censor = StreamCensor()
    for char in text:
        censor.feed(char, f)
        assert len(censor.held) <= longest - 1


def test_a_long_run_of_overlapping_occurrences_is_one_replacement_and_is_not_held_back() -> None:
    """The word "哈哈" occurs at every position of "哈哈哈…": one run, one 🚫, sent at its start; the rest swallowed."""
    words = WordFilter(["哈哈"])
    censor = StreamCensor()
    out = [censor.feed("好哈哈", words)]
    for _ in range(1000):
        out.append(censor.feed("哈", words))
        assert len(censor.held) <= 1
    out += [censor.feed("好", words), censor.finish(words)]
    assert out[0] == f"好{X}"
    assert "".join(out) == words.censor("好" + "哈" * 1002 + "好") == f"好{X}好"
