"""Censors a text that arrives in pieces (a streamed answer) before any of it is cut into messages. Pure.

Everything received is released at once, censored, except its end from where a word may begin (`WordFilter.open_end`:
never more than the longest word's length less one character), which waits for the next piece or `finish`. An
occurrence of a word can therefore never straddle what is released and what is held back. The one subtlety is a run
of overlapping occurrences (one 🚫 in `WordFilter.censor`) that reaches into the held-back end: its 🚫 is released
with its beginning, and the rest of the run — however far later occurrences extend it — is swallowed as it arrives.

So whatever the pieces, the released text joined is exactly `WordFilter.censor` of the whole text: a word written
across two pieces ("…机" + "密词…") is caught, whoever cuts the released text into parts can neither separate a word
from its 🚫 nor be surprised by a 🚫 (4 bytes) growing a part after measuring it, and the work per piece is bounded
by the piece and the longest word.

The filter is passed with every piece: the words are live (an admin command or a reload changes them), and each
piece is censored with the words in force when it arrives.
"""

from __future__ import annotations

from chatgpt_wecom.daemon.chat.words import REPLACEMENT, WordFilter


class StreamCensor:
    def __init__(self) -> None:
        self._held = ""  # received, not yet released (uncensored)
        self._covered = 0  # self._held[:_covered] belongs to a run whose 🚫 was already released

    def feed(self, piece: str, words: WordFilter) -> str:
        """Add `piece`; returns the censored text that is now final (often all of it so far, sometimes "")."""
        text = self._held + piece
        return self._release(text, words.open_end(text), words)

    def finish(self, words: WordFilter) -> str:
        """The text held back, censored: the text has ended, nothing can continue a word any more."""
        return self._release(self._held, len(self._held), words)

    @property
    def held(self) -> str:
        """Text received and not yet released (uncensored)."""
        return self._held

    def _release(self, text: str, cut: int, words: WordFilter) -> str:
        """`text[:cut]` censored, leaving `text[cut:]` held; a run crossing `cut` is released whole, as one 🚫."""
        parts: list[str] = []
        sent = self._covered  # text[:sent] is covered by a 🚫 already released
        done = sent  # text[:done] is dealt with
        for start, end in words.runs(text):
            if start < sent:  # overlaps the run already released: it grows, and nothing more is sent for it
                sent = done = max(sent, end)
            elif start < cut:
                parts += (text[done:start], REPLACEMENT)
                sent = done = end
            else:
                break
        parts.append(text[done:cut])
        self._held, self._covered = text[cut:], max(0, sent - cut)
        return "".join(parts)
