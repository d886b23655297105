"""Banned words: refuse questions that contain one, censor answers. Pure: text in, text out.

Matching is a case-insensitive substring search (``str.casefold``) over an Aho–Corasick automaton
(pyahocorasick, C), so its cost grows with the length of the text, not with the number of words.

Case folding is full Unicode folding, which can lengthen a character ("ß" → "ss", "İ" → "i̇"). The search runs on
the folded text and every match is mapped back to the characters of the original text it came from; a match that
covers part of a lengthened character covers the whole character. Compatibility forms are *not* folded:
full-width "Ｗｏｒｄ" matches "ｗｏｒｄ" but not "word" (no NFKC normalisation).
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


class WordFilter:
    """An immutable set of banned words, matched case-insensitively as substrings. A new policy is a new filter."""

    __slots__ = ("_automaton", "_words")

    def __init__(self, words: Iterable[str]) -> None:
        """Strip each word, drop empty ones, keep the first spelling of words equal after case folding."""
        kept: dict[str, str] = {}
        for raw in words:
            word = raw.strip()
            if word:
                kept.setdefault(word.casefold(), word)
        self._words: tuple[str, ...] = tuple(sorted(kept.values()))
        self._automaton = _Automaton(word.casefold() for word in self._words) if self._words else None

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
        spans = sorted({(start, end) for start, end, _ in self._matches(text)})
        if not spans:
            return text
        parts: list[str] = []
        done = 0  # text[:done] is already in parts
        run_start, run_end = spans[0]
        for start, end in spans[1:]:
            if start < run_end:  # overlaps the current run
                run_end = max(run_end, end)
                continue
            parts += (text[done:run_start], REPLACEMENT)
            done = run_end
            run_start, run_end = start, end
        parts += (text[done:run_start], REPLACEMENT, text[run_end:])
        return "".join(parts)

    def _matches(self, text: str) -> Iterator[tuple[int, int, int]]:
        """Every occurrence as (start, end exclusive, word index) in `text`'s own indices."""
        if self._automaton is None:
            return
        folded = text.casefold()
        if len(folded) == len(text):  # no character folds to more than one (none folds to nothing)
            yield from self._automaton.iter(folded)
            return
        origin: list[int] = []  # origin[i]: the index in `text` of the character folded[i] came from
        for position, char in enumerate(text):
            origin += [position] * len(char.casefold())
        for start, end, index in self._automaton.iter(folded):
            yield origin[start], origin[end - 1] + 1, index
