"""The messages sent to the model: system prompt, the running conversation, the question — within a budget.

Tokens are estimated, not counted: no tokenizer files are downloaded at run time. The estimate is deliberately
on the high side (a CJK character counts as one token, other text as one per three characters), so a context
that fits the estimate fits the model.
"""

from __future__ import annotations

from collections.abc import Sequence

ChatMessage = dict[str, str]

_MESSAGE_OVERHEAD = 4  # role and separators, per message


def estimate_tokens(text: str) -> int:
    ascii_chars = sum(1 for ch in text if ord(ch) < 128)
    other = len(text) - ascii_chars
    return other + (ascii_chars + 2) // 3 + _MESSAGE_OVERHEAD


def build_messages(
    question: str,
    history: Sequence[tuple[str, str]],
    *,
    budget: int,
    system: str | None = None,
) -> list[ChatMessage]:
    """system + as many of the newest (question, answer) pairs as fit `budget` tokens + the question.

    The oldest pairs go first. The system prompt and the question are always sent: a question too long for the
    budget on its own is the caller's to refuse (max_question_len), not silently cut here.
    """
    head: list[ChatMessage] = [{"role": "system", "content": system}] if system else []
    used = sum(estimate_tokens(m["content"]) for m in head) + estimate_tokens(question)
    kept: list[tuple[str, str]] = []
    for asked, answered in reversed(history):
        cost = estimate_tokens(asked) + estimate_tokens(answered)
        if used + cost > budget:
            break
        used += cost
        kept.append((asked, answered))
    messages = list(head)
    for asked, answered in reversed(kept):
        messages.append({"role": "user", "content": asked})
        messages.append({"role": "assistant", "content": answered})
    messages.append({"role": "user", "content": question})
    return messages


def history_in(messages: Sequence[ChatMessage]) -> int:
    """How many (question, answer) pairs of history `messages` carries."""
    return sum(1 for m in messages if m["role"] == "assistant")
