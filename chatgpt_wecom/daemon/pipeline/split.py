"""Split a long LLM answer into as few WeCom messages as possible, cut at natural places.

WeCom's ``message/send`` truncates text/markdown at 2048 UTF-8 bytes and allows ~30 messages a
minute per member, so each part must fit in ``limit`` bytes and parts must be few and large.

Algorithm (on the UTF-8 bytes, encoded once; UTF-8 is self-synchronising, so a byte search for an
ASCII or a whole multi-byte separator only ever hits character boundaries):

1. One pass over the lines finds Markdown code fences: up to 3 spaces, then a run of 3..8
   backticks or tildes (a backtick opener's info string has no backtick), closed by a line
   holding only a run of the same char at least as long.
2. Greedy loop. A part starting at ``start`` may end at most at ``hi`` (``limit`` minus the bytes of
   a reopened fence). Take the LAST cut in ``[start + half, hi]`` of the best kind: blank line,
   line break, sentence end (``。！？；`` anywhere, ``.!?;`` before a space, plus closing quotes),
   space, else a character boundary that does not strand a combining mark / variation selector /
   ZWJ. Each search is one C-level match of a greedy ``.*`` + separator regex, so it is linear.
3. A part cut inside a fenced block gets a closing fence line, and the next part reopens the
   block with the same opening line (language included); if that overflows, ``hi`` shrinks and
   the search repeats. Whitespace at a cut is dropped. Cuts that split a fence line, leave an
   empty block, or would let a mid-line backtick run start a line are rejected.
"""

from __future__ import annotations

import re
import unicodedata
from bisect import bisect_left
from typing import NamedTuple

__all__ = ["MIN_LIMIT", "WECOM_TEXT_LIMIT", "split_message"]

MIN_LIMIT = 64
WECOM_TEXT_LIMIT = 2048  # bytes of UTF-8 per WeCom text or markdown message
_MAX_MARKER = 8
_FENCE = re.compile(rb"^ {0,3}(`{3,}|~{3,})(.*)", re.MULTILINE)
_FENCY = re.compile(rb" {0,3}(?:```|~~~)")  # a line starting like this may be read as a fence
_ZWJ = "\u200d".encode()


def _alt(chars: str) -> bytes:
    return b"|".join(re.escape(ch.encode()) for ch in chars)


_CLOSERS = rb"(?:" + _alt("\"')”’）」』】") + rb")*"
_SENTENCE = rb"(?:" + _alt("。！？；") + rb")" + _CLOSERS + rb"|[.!?;]" + _CLOSERS + rb"(?=[ \t])"
# (pattern, cut goes after the separator, mid-line cut: drop spaces after it, bytes a match needs)
_KINDS: list[tuple[re.Pattern[bytes], bool, bool, tuple[bytes, ...]]] = [
    (re.compile(rb"(?s:.*)(\n[ \t\r]*\n)"), False, False, (b"\n",)),
    (re.compile(rb"(?s:.*)(\n)"), False, False, (b"\n",)),
    (re.compile(rb"(?s:.*)(" + _SENTENCE + rb")"), True, True, ()),
    (re.compile(rb"(?s:.*)([ \t])"), False, True, (b" ", b"\t")),
]


class _Block(NamedTuple):
    open_start: int  # offset of the opening fence line
    body_start: int  # offset just after the opening line's newline
    close_start: int  # offset of the closing line (len(data) if never closed)
    close_end: int  # offset just after the closing line's run of fence chars
    head: bytes  # reopening line + "\n", prepended to a part that starts inside the block
    tail: bytes  # "\n" + closing fence, appended to a part that ends inside the block


def _scan_fences(data: bytes, limit: int) -> list[_Block]:
    blocks: list[_Block] = []
    opened: tuple[int, int, bytes, bytes] | None = None  # open_start, body_start, marker, line
    for m in _FENCE.finditer(data):
        if opened is None:
            if len(m[1]) <= _MAX_MARKER and not (m[1][:1] == b"`" and b"`" in m[2]):
                opened = (m.start(), min(m.end() + 1, len(data)), m[1], m[0].strip(b" \t\r"))
        elif m[1][:1] == opened[2][:1] and len(m[1]) >= len(opened[2]) and not m[2].strip(b" \t\r"):
            blocks.append(_block(opened, m.start(), m.end(1), limit))
            opened = None
    if opened is not None:
        blocks.append(_block(opened, len(data), len(data), limit))
    return blocks


def _block(opened: tuple[int, int, bytes, bytes], close_start: int, close_end: int, limit: int) -> _Block:
    open_start, body_start, marker, line = opened
    reopen = line if len(line) <= limit // 8 else marker  # a huge info string is not repeated
    return _Block(open_start, body_start, close_start, close_end, reopen + b"\n", b"\n" + marker)


def _glued(data: bytes, c: int) -> bool:
    """Is ``c`` between a character and a mark / selector / joiner that belongs to it?"""
    if data.endswith(_ZWJ, 0, c):
        return True
    if data[c] < 0x80:
        return False
    ch = data[c : c + 4].decode("utf-8", "ignore")[:1]
    cp = ord(ch)
    return unicodedata.category(ch) in ("Mn", "Mc", "Me") or cp == 0x200D or 0x1F3FB <= cp <= 0x1F3FF


class _Splitter:
    def __init__(self, data: bytes, limit: int) -> None:
        self.data, self.n, self.limit = data, len(data), limit
        self.blocks = _scan_fences(data, limit)
        self.starts = [b.open_start for b in self.blocks]

    def block_at(self, pos: int) -> _Block | None:
        """The fenced block that a part boundary at ``pos`` falls strictly inside, if any."""
        i = bisect_left(self.starts, pos) - 1
        return self.blocks[i] if i >= 0 and pos < self.blocks[i].close_end else None

    def skip(self, pos: int, inline: bool) -> int:
        """Skip the separator after a cut: line breaks, blank lines, and spaces if ``inline``."""
        data, n = self.data, self.n
        while pos < n:
            if data[pos] in b"\r\n":
                pos += 1
                continue
            q = pos
            while q < n and data[q] in b" \t":
                q += 1
            if q == pos or not (inline or q == n or data[q] in b"\r\n"):
                break
            pos = q
        return pos

    def rstrip(self, start: int, c: int) -> int:
        while c > start and self.data[c - 1] in b" \t\r\n":
            c -= 1
        return c

    def bad(self, start: int, c: int, inline: bool) -> bool:
        data, e, s = self.data, self.rstrip(start, c), self.skip(c, inline)
        blk = self.block_at(e)
        if e == start or (blk is not None and (e < blk.body_start or s >= blk.close_start)):
            return True  # empty part, cut in/right after an opening line, or just before a closing one
        if data[c] == 0x0A:
            return False
        line_start = data.rfind(b"\n", 0, c) + 1  # mid-line cut: no half may look like a fence line
        return bool(_FENCY.match(data, line_start) or (data[s - 1] != 0x0A and _FENCY.match(data, s)))

    def find_cut(self, start: int, hi: int) -> tuple[int, bool]:
        lo, data = start + (hi - start) // 2, self.data
        scan, end0 = max(start, lo - 16), min(self.n, hi + 8)
        for pattern, after, inline, needs in _KINDS:
            if needs and all(data.find(b, lo, end0) < 0 for b in needs):
                continue  # cheap memchr pre-check before the regex scan
            end = end0
            while (m := pattern.match(data, scan, end)) is not None:
                c = m.end(1) if after else m.start(1)
                if c < lo:
                    break
                if c <= hi and not self.bad(start, c, inline):
                    return c, inline
                end = m.end(1) - 1
        return self.char_cut(start, lo, hi), False

    def char_cut(self, start: int, lo: int, hi: int) -> int:
        data, c = self.data, hi
        while data[c] & 0xC0 == 0x80:
            c -= 1
        first = c
        for _ in range(16):
            if not (self.bad(start, c, False) or _glued(data, c)):
                return c
            c -= 1
            while data[c] & 0xC0 == 0x80:
                c -= 1
            if c <= lo:
                break
        before_line = data.rfind(b"\n", 0, first)  # e.g. a fence-like line longer than half a part
        if before_line > start and not self.bad(start, before_line, False):
            return before_line
        return first

    def run(self) -> list[str]:
        data, n, limit = self.data, self.n, self.limit
        parts: list[str] = []
        pos = 0
        while pos < n:
            blk = self.block_at(pos)
            head = blk.head if blk is not None else b""
            if len(head) + n - pos <= limit:
                parts.append((head + data[pos:]).decode())
                break
            hi = pos + limit - len(head)
            while True:
                c, inline = self.find_cut(pos, hi)
                e = self.rstrip(pos, c)
                end_blk = self.block_at(e)
                tail = end_blk.tail if end_blk is not None else b""
                over = len(head) + (e - pos) + len(tail) - limit
                if over <= 0:
                    break
                hi -= over
            if e > pos:
                parts.append((head + data[pos:e] + tail).decode())
            pos = self.skip(c, inline)
        return parts


def split_message(text: str, limit: int = WECOM_TEXT_LIMIT) -> list[str]:
    """Split ``text`` into parts of at most ``limit`` UTF-8 bytes each, in order.

    Whitespace-only text gives ``[]``; text that fits is returned unchanged as ``[text]``.
    Cuts prefer blank lines, then line breaks, sentence ends, spaces, and finally character
    boundaries, taking the last one that keeps a part at least half full. Code fences cut
    across parts are closed and reopened (with their language). Whitespace at cuts is dropped.
    Raises ``ValueError`` if ``limit`` < 64.
    """
    if limit < MIN_LIMIT:
        raise ValueError(f"limit must be >= {MIN_LIMIT} bytes, got {limit}")
    if not text.strip():
        return []
    data = text.encode("utf-8")
    if len(data) <= limit:
        return [text]
    return _Splitter(data, limit).run()
