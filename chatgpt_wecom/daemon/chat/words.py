"""Banned words: refuse questions that contain one, censor answers. Pure: text in, text out.

Matching is a case-insensitive substring search (``str.casefold``) over an Aho–Corasick automaton
(pyahocorasick, C), so its cost grows with the length of the text, not with the number of words.

Case folding is full Unicode folding, which can lengthen a character ("ß" → "ss", "İ" → "i̇"). The search runs on
the folded text and every match is mapped back to the characters of the original text it came from; a match that
covers part of a lengthened character covers the whole character. Compatibility forms are *not* folded:
full-width "Ｗｏｒｄ" matches "ｗｏｒｄ" but not "word" (no NFKC normalisation).

A text that is still being written (a streamed answer) is censored in pieces with `StreamCensor`
(`stream_censor.py`), built on `runs` and `open_end`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import ahocorasick  # type: ignore[import-not-found]  # a C extension without stubs

REPLACEMENT = "🚫"


class _Automaton:
    """A typed face for ``ahocorasick.Automaton``: folded words in, (start, end, word index) matches out."""

    __slots__ = ("_automaton",)

    def __init__(self, folded: Iterable[str]) -> None:
        automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY)
        for index, word in enumerate(folded):
            automaton.add_word(word, (index, len(word)))
        automaton.make_automaton()
        self._automaton = automaton

    def iter(self, text: str) -> Iterator[tuple[int, int, int]]:
        """Every occurrence, overlapping ones included: (start, end exclusive, word index), ordered by end."""
        for last, (index, length) in self._automaton.iter(text):
            yield last + 1 - length, last + 1, index

    def begins_word(self, text: str) -> bool:
        """Whether `text` is the beginning of a word (or a whole word)."""
        return bool(self._automaton.match(text))


class WordFilter:
    """An immutable set of banned words, matched case-insensitively as substrings. A new policy is a new filter."""

    __slots__ = ("_automaton", "_longest", "_words")

    def __init__(self, words: Iterable[str]) -> None:
        """Strip each word, drop empty ones, keep the first spelling of words equal after case folding."""
        kept: dict[str, str] = {}
        for raw in words:
            word = raw.strip()
            if word:
                kept.setdefault(word.casefold(), word)
        self._words: tuple[str, ...] = tuple(sorted(kept.values()))
        self._automaton = _Automaton(word.casefold() for word in self._words) if self._words else None
        self._longest = max((len(word) for word in kept), default=0)  # in case-folded characters

    @property
    def words(self) -> tuple[str, ...]:
        """The stripped, deduplicated words, sorted."""
        return self._words

    def __bool__(self) -> bool:
        return bool(self._words)

    def __repr__(self) -> str:
        return f"WordFilter(<{len(self._words)} words>)"

    def find(self, text: str) -> list[str]:
        """The distinct words present in `text`, in order of first appearance (by start, then end); [] if none."""
        first: dict[int, tuple[int, int]] = {}
        for start, end, index in self._matches(text):  # ordered by end: a word's first match is its earliest
            first.setdefault(index, (start, end))
        return [self._words[index] for index in sorted(first, key=first.__getitem__)]

    def censor(self, text: str) -> str:
        """`text` with every occurrence of every word replaced by REPLACEMENT.

        Overlapping or nested occurrences ("abc" and "bcd" in "abcd") are merged: each run of characters covered
        by overlapping occurrences becomes one REPLACEMENT. Occurrences that merely touch ("bad" twice in "badbad")
        stay separate, one REPLACEMENT each. Text outside the occurrences is kept as it was, case included.
        """
        parts: list[str] = []
        done = 0  # text[:done] is already in parts
        for start, end in self.runs(text):
            parts += (text[done:start], REPLACEMENT)
            done = end
        return "".join(parts) + text[done:] if parts else text

    def runs(self, text: str) -> list[tuple[int, int]]:
        """What `censor` replaces: (start, end exclusive) of each run of overlapping occurrences, in order."""
        spans = sorted({(start, end) for start, end, _ in self._matches(text)})
        runs: list[tuple[int, int]] = []
        for start, end in spans:
            if runs and start < runs[-1][1]:  # overlaps the current run
                runs[-1] = (runs[-1][0], max(runs[-1][1], end))
            else:
                runs.append((start, end))
        return runs

    def open_end(self, text: str) -> int:
        """Where the longest end of `text` that begins a word starts (`len(text)` when none does): what follows
        `text` may complete a word there, and nowhere before it. Never more than the longest word's length less
        one character from the end."""
        if self._automaton is None:
            return len(text)
        folded, origin = _fold(text)
        for i in range(max(0, len(folded) - self._longest + 1), len(folded)):  # the longest end first
            if self._automaton.begins_word(folded[i:]):
                return origin[i] if origin else i
        return len(text)

    def _matches(self, text: str) -> Iterator[tuple[int, int, int]]:
        """Every occurrence as (start, end exclusive, word index) in `text`'s own indices."""
        if self._automaton is None:
            return
        folded, origin = _fold(text)
        if not origin:
            yield from self._automaton.iter(folded)
            return
        for start, end, index in self._automaton.iter(folded):
            yield origin[start], origin[end - 1] + 1, index


def _fold(text: str) -> tuple[str, list[int]]:
    """`text` case-folded, and for each folded character the index in `text` of the character it came from —
    or [] when folding kept every character to one (the indices are then the same; none folds to nothing)."""
    folded = text.casefold()
    if len(folded) == len(text):
        return folded, []
    origin: list[int] = []
    for position, char in enumerate(text):
        origin += [position] * len(char.casefold())
    return folded, origin
