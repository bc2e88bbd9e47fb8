"""Thought dropout (Wang et al. 2025, "Think or Not? Selective Reasoning via Reinforcement Learning for
Vision-Language Models", arXiv:2505.16854): the supervised stage before TON's GRPO replaces each
example's reasoning by an empty think block with probability ``p``, so the model learns that a
``<think></think>`` answer is an option; GRPO then lets it choose when to think.

The transform works on text (a worked solution, an SFT target): only the content of the first think
block changes, its tags and everything after them (the answer) stay as they are.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence

OPEN, CLOSE = "<think>", "</think>"
EMPTY_THOUGHT = "\n\n"  # GUESS: what an empty think block holds


def think_block(open_tag: str = OPEN, close_tag: str = CLOSE) -> re.Pattern[str]:
    """The first ``open_tag … close_tag`` block (its content may span lines)."""
    return re.compile(f"({re.escape(open_tag)})(.*?)({re.escape(close_tag)})", re.S)


def drop_thought(text: str, open_tag: str = OPEN, close_tag: str = CLOSE, empty: str = EMPTY_THOUGHT) -> str:
    """``text`` with the content of its first think block replaced by ``empty``; text without a think
    block is returned unchanged."""
    return think_block(open_tag, close_tag).sub(lambda m: m.group(1) + empty + m.group(3), text, count=1)


def thought_dropout(
    texts: Sequence[str], p: float, seed: int = 0, open_tag: str = OPEN, close_tag: str = CLOSE,
    empty: str = EMPTY_THOUGHT,
) -> list[str]:
    """TON's thought dropout over a data set: each text, independently with probability ``p`` (a
    seeded draw per text), gets an empty think block (:func:`drop_thought`); the answers after the
    blocks and the tags are kept. Shapes: ``texts [N]`` -> ``[N]``."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"thought dropout: p must lie in [0, 1], got {p}")
    draws = random.Random(seed)
    return [drop_thought(t, open_tag, close_tag, empty) if draws.random() < p else t for t in texts]
