"""TON's format reward: a think block, possibly empty, then an answer (Wang et al. 2025, "Think or Not?
Selective Reasoning via Reinforcement Learning for Vision-Language Models", arXiv:2505.16854)."""

from __future__ import annotations

import re

from grpozoo.registry import rewards
from grpozoo.tasks.thought_dropout import CLOSE, OPEN


@rewards.register("think_or_not_format")
def think_or_not_format_reward(
    completions, prompts, open_tag: str = OPEN, close_tag: str = CLOSE, **columns
) -> list[float]:
    """1.0 when the completion is one think block, empty or not, followed by a non-empty answer (the
    think-or-not format the model keeps while choosing whether to think), else 0.0.

    GUESS: the paper's exact format check; here ``<think>…</think>`` at the start (after white
    space), no second think block, and some text after it."""
    shape = re.compile(rf"\s*{re.escape(open_tag)}(.*?){re.escape(close_tag)}\s*(\S.*)", re.S)
    out = []
    for completion in completions:
        match = shape.fullmatch(completion)
        out.append(float(match is not None and open_tag not in match.group(2)))
    return out
