"""Pulling the final answer out of a completion, in the formats a prompt can ask for."""

from __future__ import annotations

import re

# a comma counts as a thousands separator only before exactly three digits ("1,234" but not "1,2")
NUMBER = re.compile(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?(?!\d)|-?\d+(?:\.\d+)?|-?\.\d+")
ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


def last_boxed(text: str) -> str | None:
    """Content of the last ``\\boxed{...}``, with nested braces balanced."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed{") - 1
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j].strip()
    return None


def extract_answer(text: str, style: str) -> str | None:
    """The answer in ``text`` by ``style``: ``last_number``, ``boxed``, ``answer_tag`` or ``full``.

    Returns None when the completion holds no answer in that style; an empty ``\\boxed{}`` or
    ``<answer></answer>`` holds none (a format reward must not pay for the bare tag).
    """
    if style == "last_number":
        numbers = NUMBER.findall(text)
        return numbers[-1].replace(",", "") if numbers else None
    if style == "boxed":
        return last_boxed(text) or None
    if style == "answer_tag":
        tags = ANSWER_TAG.findall(text)
        return (tags[-1].strip() or None) if tags else None
    if style == "full":
        return text.strip()
    raise ValueError(f"answer_format {style!r} is not one of last_number, boxed, answer_tag, full")
