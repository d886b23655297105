"""When a streamed answer's parts go out (pure, with a hand-moved clock)."""

from __future__ import annotations

from chatgpt_wecom.daemon.chat.stream_censor import StreamCensor
from chatgpt_wecom.daemon.chat.words import REPLACEMENT, WordFilter
from chatgpt_wecom.daemon.pipeline.progressive import ProgressiveSplitter


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def feed_all(splitter: ProgressiveSplitter, text: str, step: int = 7) -> list[str]:
    parts: list[str] = []
    for i in range(0, len(text), step):
        parts += splitter.feed(text[i : i + step])
    return parts


def test_the_first_paragraph_goes_out_at_once() -> None:
    clock = Clock()
    s = ProgressiveSplitter(clock=clock)
    assert s.feed("第一段还没写完") == []
    assert s.feed("。\n\n第二段") == ["第一段还没写完。"]
    assert s.pending == "第二段"


def test_a_fast_stream_is_merged_within_the_rate() -> None:
    clock = Clock()
    s = ProgressiveSplitter(min_interval=2.0, clock=clock)
    text = "".join(f"第{n}段。\n\n" for n in range(1, 6))
    parts = feed_all(s, text)  # all within the same instant
    assert parts == ["第1段。"]  # later paragraphs wait for the interval
    clock.now = 2.5
    assert s.feed("第6段") == ["第2段。\n\n第3段。\n\n第4段。\n\n第5段。"]  # merged into one part
    assert s.finish() == ["第6段"]


def test_the_byte_limit_forces_a_part() -> None:
    clock = Clock()
    s = ProgressiveSplitter(limit=100, min_interval=60, clock=clock)
    s.feed("开头。\n\n")  # first part sent
    parts = feed_all(s, "很长" * 100)
    assert parts and all(len(p.encode()) <= 100 for p in parts)
    rest = s.finish()
    assert "".join(parts + rest) == "很长" * 100


def test_code_blocks_are_not_cut_at_their_blank_lines() -> None:
    clock = Clock()
    s = ProgressiveSplitter(clock=clock)
    assert s.feed("```python\ndef a():\n    pass\n\n") == []
    assert s.feed("def b():\n    pass\n```\n\n后文") == ["```python\ndef a():\n    pass\n\ndef b():\n    pass\n```"]


def test_finish_returns_the_rest_and_nothing_is_lost() -> None:
    clock = Clock()
    s = ProgressiveSplitter(limit=256, min_interval=1.0, clock=clock)
    text = "\n\n".join(f"段落{n}：" + "内容" * (n * 7) for n in range(12))
    parts: list[str] = []
    for i in range(0, len(text), 11):
        clock.now += 0.3
        parts += s.feed(text[i : i + 11])
    parts += s.finish()
    assert all(0 < len(p.encode()) <= 256 for p in parts)
    assert "".join(parts).replace("\n", "") == text.replace("\n", "")
    assert s.parts_sent == len(parts)


# --- censored streams: the responder censors the text before the splitter cuts it ----------------------------


def censored_parts(words: WordFilter, deltas: list[str], limit: int) -> list[str]:
    """Parts of a stream as the responder makes them: each delta censored, then fed to the splitter."""
    s, censor = ProgressiveSplitter(limit=limit, min_interval=0.0, clock=Clock()), StreamCensor()
    parts = [p for delta in deltas for p in s.feed(censor.feed(delta, words))]
    return parts + s.feed(censor.finish(words)) + s.finish()


def test_a_word_across_two_deltas_and_a_forced_cut_is_censored() -> None:
    """ "…机" | "密词…" in a line longer than a part: the forced cut falls where the deltas meet."""
    words, head, tail = WordFilter(["机密词"]), "好" * 20, "好" * 30  # 20 × 3 bytes + "机" = 63 bytes
    parts = censored_parts(words, [f"{head}机", f"密词{tail}"], limit=64)
    assert len(parts) > 1 and all(len(p.encode()) <= 64 for p in parts)
    assert "".join(parts) == f"{head}{REPLACEMENT}{tail}"


def test_parts_fit_the_limit_after_censoring() -> None:
    """🚫 is 4 bytes: "a" becoming 🚫 quadruples the text — the splitter measures what is sent."""
    parts = censored_parts(WordFilter(["a"]), ["a" * 7] * 30, limit=64)
    assert all(len(p.encode()) <= 64 for p in parts)
    assert "".join(parts) == REPLACEMENT * 210


def test_in_place_nothing_goes_early_until_the_message_is_full() -> None:
    clock = Clock()
    s = ProgressiveSplitter(limit=64, clock=clock, in_place=True)
    assert s.feed("第一段写完了。\n\n第二段") == []  # a finished paragraph is shown in place, not sent
    clock.now += 100
    assert s.feed("也写完了。\n\n") == []
    parts = s.feed("第三段让消息超过六十个字节了。")
    assert parts and all(len(p.encode()) <= 64 for p in parts)
    assert (
        "".join([*parts, s.pending]).replace("\n", "") == "第一段写完了。第二段也写完了。第三段让消息超过六十个字节了。"
    )


def test_in_place_a_message_grown_for_max_age_ends_at_its_last_paragraph() -> None:
    clock = Clock()
    s = ProgressiveSplitter(limit=10_000, clock=clock, in_place=True, max_age=300.0)
    assert s.feed("开头。\n\n") == []
    clock.now = 299.0
    assert s.feed("第二段写到一半") == []
    clock.now = 300.0
    assert s.feed("，还在写") == ["开头。"]  # ended at the paragraph break; the half-written one starts the next
    assert s.pending == "第二段写到一半，还在写"
    clock.now = 599.0
    assert s.feed("。") == []  # the next message's age counts from its own start
    clock.now = 600.5
    assert s.feed("再来") == ["第二段写到一半，还在写。再来"]  # no break to end at: the whole of it
