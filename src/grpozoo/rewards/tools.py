"""Tool-use rewards: correctness scaled by how close the number of tool calls is to the optimum."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from grpozoo.registry import rewards
from grpozoo.rewards.common import correct_flags, groups_of, need_column


def count_tool_calls(text: str, pattern: str = r"<tool_call>") -> int:
    """Number of non-overlapping matches of the regular expression ``pattern`` in ``text``."""
    return len(re.findall(pattern, text))


def otc_factor(calls: float, optimal: float, c: float = 1.0) -> float:
    """OTC tool-efficiency factor ``cos(π/2 · |m − n| / (m + n + c))``: 1 at ``m = n`` (also at
    ``m = n = 0``), falling as ``m`` moves away from ``n`` on either side, in (0, 1]."""
    if c <= 0:
        raise ValueError(f"OTC smoothing c={c} must be > 0 (it keeps m = n = 0 defined)")
    return math.cos(math.pi / 2 * abs(calls - optimal) / (calls + optimal + c))


@rewards.register("otc")
def otc_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    group_id: Sequence[Any] | None = None,
    pattern: str = r"<tool_call>",
    optimal_column: str = "optimal_tool_calls",
    c: float = 1.0,
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """OTC tool-call efficiency (Wang et al. 2025, *OTC: Optimal Tool Calls via Reinforcement Learning*,
    arXiv:2504.14870).

    ``[B]``: ``correct · otc_factor(m, n)``: 0 for a wrong answer whatever its calls; for a right
    one, 1 when its number of tool calls ``m`` equals the optimum ``n`` and less the further ``m``
    is from ``n``. ``m`` is the calls the environment of a multi-turn rollout ran (the ``tool_calls``
    column), or else the matches of ``pattern`` in the completion. ``n`` is the fewest calls among the group's right
    completions, or the row's ``optimal_column`` value when the task has that column (the smaller
    of the two when both exist).

    GUESS: the factor's form ``cos(π/2·|m−n|/(m+n+c))`` with ``c = 1``; and ``n`` taken within the
    group (the paper tracks the fewest calls per question across training).
    """
    size = len(completions)
    correct = correct_flags("otc", task_score, size, correct_threshold)
    # a multi-turn rollout reports the calls its environment ran; a single-turn one is counted in its text
    ran = columns.get("tool_calls")
    calls = list(ran) if ran is not None else [count_tool_calls(text, pattern) for text in completions]
    known = columns.get(optimal_column)
    out = [0.0] * size
    for indices in groups_of(need_column("otc", "group_id", group_id, size)).values():
        right = [calls[i] for i in indices if correct[i]]
        candidates = right + ([float(known[indices[0]])] if known is not None else [])
        if not right:
            continue
        optimal = min(candidates)
        for i in indices:
            if correct[i]:
                out[i] = otc_factor(calls[i], optimal, c)
    return out
