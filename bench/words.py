"""Banned-word benchmark: 5,000 words against a 2 KB answer.

Run from the repository root: ``.venv/bin/python bench/words.py``. Not a test: it prints figures and exits 0.

Everything is deterministic (fixed seed). The words are 5,000 distinct entries: mostly 2–6 common CJK characters,
some Latin words of 4–10 letters. The answer is ~2 KB of UTF-8, mixed Chinese and English, with 10 of the words
planted in it (upper-cased for the Latin ones); a few more may occur in it by chance. Three ways of doing the
same job are timed per call:

* ``WordFilter`` — the daemon's filter (pyahocorasick, case folding, overlap merging);
* ``re`` — one compiled alternation of all words with ``re.IGNORECASE`` (for comparison only: it finds
  non-overlapping matches, and IGNORECASE is simple case folding, so "ß" does not match "SS");
* naive — a loop over all words with ``in`` / ``str.find`` on the case-folded text (the straightforward way).
"""
# ruff: noqa: E402

from __future__ import annotations

import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from chatgpt_wecom.daemon.chat.words import REPLACEMENT, WordFilter

SEED = 20240601
N_WORDS = 5_000
ANSWER_BYTES = 2_048
PLANTED = 10
RUNS = 2_000
SLOW_RUNS = 200  # the re and naive rows: each call takes milliseconds
BUILD_RUNS = 5

COMMON_CJK = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后"
    "多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还"
    "因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结"
    "解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级"
    "少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领"
)
LATIN = "abcdefghijklmnopqrstuvwxyz"
FILLER_TEXT = (
    "the model answers questions about deployment configuration and the service keeps a short history "
    "of each conversation so that follow up questions make sense within the session timeout"
)
FILLER_EN = FILLER_TEXT.split()


def make_words(rng: random.Random) -> list[str]:
    """5,000 distinct (case-insensitively) words: about 85% CJK of 2–6 characters, 15% Latin of 4–10 letters."""
    words: dict[str, str] = {}
    while len(words) < N_WORDS:
        if rng.random() < 0.85:
            word = "".join(rng.choices(COMMON_CJK, k=rng.randint(2, 6)))
        else:
            word = "".join(rng.choices(LATIN, k=rng.randint(4, 10)))
        words.setdefault(word.casefold(), word)
    return list(words.values())


def make_answer(rng: random.Random, words: Sequence[str]) -> str:
    """~ANSWER_BYTES of UTF-8: alternating Chinese and English sentences, PLANTED words spread through it."""
    planted = rng.sample(list(words), PLANTED)
    parts: list[str] = []
    size = 0
    while size < ANSWER_BYTES - 100:  # room for the planted words
        if rng.random() < 0.5:
            part = "".join(rng.choices(COMMON_CJK, k=rng.randint(8, 20))) + "。"
        else:
            part = " ".join(rng.choices(FILLER_EN, k=rng.randint(5, 12))).capitalize() + ". "
        parts.append(part)
        size += len(part.encode())
    for word in planted:
        at = rng.randrange(len(parts))
        parts[at] += word.upper() if word.isascii() else word
    return "".join(parts)


def time_calls(call: Callable[[], object], runs: int) -> tuple[float, float]:
    """(median, p99) in microseconds over `runs` calls, after a few warm-up calls."""
    for _ in range(min(20, runs)):
        call()
    samples: list[int] = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    samples.sort()
    return statistics.median(samples) / 1000, samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000


def time_build(build: Callable[[], object]) -> float:
    """Median build time in milliseconds over BUILD_RUNS builds."""
    samples: list[int] = []
    for _ in range(BUILD_RUNS):
        start = time.perf_counter_ns()
        build()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples) / 1e6


def compile_alternation(words: Sequence[str]) -> re.Pattern[str]:
    re.purge()  # no help from re's cache between builds
    return re.compile("|".join(map(re.escape, sorted(words, key=len, reverse=True))), re.IGNORECASE)


def naive_find(folded_words: Sequence[str], text: str) -> list[str]:
    folded = text.casefold()
    return [word for word in folded_words if word in folded]


def naive_censor(folded_words: Sequence[str], text: str) -> str:
    """Every occurrence of every word, overlaps merged; assumes folding keeps the text's length (true here)."""
    folded = text.casefold()
    spans: list[tuple[int, int]] = []
    for word in folded_words:
        at = folded.find(word)
        while at >= 0:
            spans.append((at, at + len(word)))
            at = folded.find(word, at + 1)
    if not spans:
        return text
    spans.sort()
    out: list[str] = []
    done, run_start, run_end = 0, *spans[0]
    for start, end in spans[1:]:
        if start < run_end:
            run_end = max(run_end, end)
        else:
            out += (text[done:run_start], REPLACEMENT)
            done, run_start, run_end = run_end, start, end
    return "".join([*out, text[done:run_start], REPLACEMENT, text[run_end:]])


def main() -> None:
    rng = random.Random(SEED)
    words = make_words(rng)
    answer = make_answer(rng, words)
    answer_sharp_s = answer.replace("。", "。Straße ", 3)  # "ß" folds to "ss": the index-mapping path
    folded_words = [word.casefold() for word in words]

    word_filter = WordFilter(words)
    pattern = compile_alternation(words)
    found = word_filter.find(answer)
    assert set(found) == {w for w in words if w.casefold() in answer.casefold()}
    assert word_filter.censor(answer) == naive_censor(folded_words, answer)

    print(f"{len(words)} words, answer {len(answer.encode())} bytes / {len(answer)} chars, {len(found)} words in it")
    print(
        f"build: WordFilter {time_build(lambda: WordFilter(words)):.1f} ms, "
        f"re alternation {time_build(lambda: compile_alternation(words)):.1f} ms"
    )
    rows: list[tuple[str, Callable[[], object], int]] = [
        ("WordFilter.find", lambda: word_filter.find(answer), RUNS),
        ("WordFilter.censor", lambda: word_filter.censor(answer), RUNS),
        ("WordFilter.censor (with ß)", lambda: word_filter.censor(answer_sharp_s), RUNS),
        ("re find (finditer)", lambda: {m.group().casefold() for m in pattern.finditer(answer)}, SLOW_RUNS),
        ("re censor (sub)", lambda: pattern.sub(REPLACEMENT, answer), SLOW_RUNS),
        ("naive find (in)", lambda: naive_find(folded_words, answer), SLOW_RUNS),
        ("naive censor (find)", lambda: naive_censor(folded_words, answer), SLOW_RUNS),
    ]
    print(f"{'per call':<28}{'median µs':>11}{'p99 µs':>10}{'runs':>7}")
    for name, call, runs in rows:
        median, p99 = time_calls(call, runs)
        print(f"{name:<28}{median:>11.1f}{p99:>10.1f}{runs:>7}")


if __name__ == "__main__":
    main()
