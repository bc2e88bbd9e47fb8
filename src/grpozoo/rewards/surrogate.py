"""Label-free surrogate rewards from format and length (Xin et al. 2025, "Surrogate Signals from
Format and Length: Reinforcement Learning for Solving Mathematical Problems without Ground Truth
Answers", arXiv:2505.19439).

No answer key is read at any point: the reward sees the completions, their lengths and the
training step only. Early in training the format alone is rewarded; from ``switch_fraction`` of
the run on, a length term that rises to a target length and falls after it is added.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from grpozoo.registry import rewards
from grpozoo.rewards.common import check_range, need_column

# a non-empty think block, then (after it) one final \boxed{…} with something in it (one level of
# nested braces, as in \frac{1}{2}) and nothing after it but whitespace
_BODY = r"(?:(?!</?think>)[\s\S])"
_BOXED = r"\\boxed\{\s*(?:[^{}\s]|\{[^{}]*\})(?:[^{}]|\{[^{}]*\})*\}"
THINK_BOXED = rf"^\s*<think>{_BODY}*?(?!</think>)\S{_BODY}*</think>{_BODY}*?{_BOXED}\s*$"


def format_ok(text: str, pattern: str = THINK_BOXED) -> bool:
    """Whether ``text`` has the asked-for format: ``pattern`` (a regular expression) matches it
    (``re.search``, dot matching newlines)."""
    return re.search(pattern, text, re.DOTALL) is not None


def rise_and_fall(length: float, target: float, limit: float) -> float:
    """A length reward in [0, 1] peaking at ``target`` tokens: ``L / target`` up to the target,
    then falling linearly to 0 at ``limit`` tokens (0 beyond)."""
    if length <= target:
        return max(length, 0.0) / target
    if length >= limit:
        return 0.0
    return (limit - length) / (limit - target)


@rewards.register("surrogate")
def surrogate_reward(
    completions: list[str],
    prompts: list[str],
    completion_length: Sequence[int] | None = None,
    truncated: Sequence[bool] | None = None,
    step: Sequence[int] | None = None,
    total_steps: Sequence[int] | None = None,
    pattern: str = THINK_BOXED,
    switch_fraction: float = 0.3,
    length_weight: float = 0.5,
    target_length: int = 256,
    length_limit: int | None = None,
    **columns: Any,
) -> list[float]:
    """Format-then-length surrogate reward without ground truth (Xin et al. 2025, "Surrogate Signals
    from Format and Length: Reinforcement Learning for Solving Mathematical Problems without Ground
    Truth Answers", arXiv:2505.19439).

    ``[B]``: ``r = f + 1[progress >= switch_fraction] · f · length_weight · ℓ(L)`` with ``f`` 1 when
    the completion has the format (``format_ok``: ``pattern`` matches; the default asks for a
    non-empty ``<think>`` block, then a final non-empty ``\\boxed{}``) else 0, ``progress =
    (step − 1)/(total_steps − 1)`` and ``ℓ`` (``rise_and_fall``) rising to 1 at ``target_length``
    tokens and back to 0 at ``length_limit`` (default twice the target). The length term is paid
    only with the format, and a truncated completion gets none, so length cannot be bought with
    padding. The answer key (``answer``, ``task_score``) is never read.

    GUESS: the switch point (``switch_fraction`` 0.3), the length term's shape, ``target_length``
    256, ``length_limit`` 2·target, ``length_weight`` 0.5, and the format pattern.
    """
    check_range("surrogate", "switch_fraction", switch_fraction, 0.0, 1.0)
    limit = 2 * target_length if length_limit is None else length_limit
    if not 0 < target_length < limit:
        raise ValueError(
            f"reward 'surrogate': target_length={target_length} must lie in (0, length_limit={limit})"
        )
    size = len(completions)
    lengths = need_column("surrogate", "completion_length", completion_length, size)
    cut = need_column("surrogate", "truncated", truncated, size)
    steps = need_column("surrogate", "step", step, size)
    totals = need_column("surrogate", "total_steps", total_steps, size)
    out = []
    for i, text in enumerate(completions):
        formatted = float(format_ok(text, pattern))
        total = int(totals[i])
        progress = 1.0 if total <= 1 else (int(steps[i]) - 1) / (total - 1)
        value = formatted
        if formatted and progress >= switch_fraction and not cut[i]:
            value += length_weight * rise_and_fall(float(lengths[i]), float(target_length), float(limit))
        out.append(value)
    return out
