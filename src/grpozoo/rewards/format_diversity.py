"""Ada-GRPO's format-diversity reward scaling (Wu et al. 2025, "ARM: Adaptive Reasoning Model",
arXiv:2505.20258).

Each completion reasons in one format: ``direct`` (the answer alone), ``short_cot``, ``code`` or
``long_cot``. Plain GRPO collapses onto the most accurate format; Ada-GRPO multiplies each reward by
``α_i(t) = 1 + (G / F(o_i) − 1) · d(t)``, ``F(o_i)`` the number of completions of the group in
``o_i``'s format and ``d(t) = ½(1 + cos(π t / T))`` decaying from 1 to 0 over training, so a rare
format counts up to ``G`` times early on and every format counts once at the end.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Any

from grpozoo.registry import rewards
from grpozoo.rewards.common import groups_of, need_column

FORMATS = ("direct", "short_cot", "code", "long_cot")
# ARM's format tokens: <ANSWER>…</ANSWER>, <COT>…</COT>, <CODE>…</CODE>, <LONG_COT>…</LONG_COT>
FORMAT_TAGS = {"answer": "direct", "cot": "short_cot", "code": "code", "long_cot": "long_cot"}
_TAGGED = re.compile(r"^\s*<(answer|cot|code|long_cot)>(.*?)</\1>", re.IGNORECASE | re.DOTALL)
_CODE_BLOCK = re.compile(r"```[\w+-]*\n?(.*?)```", re.DOTALL)


def reasoning_format(text: str, length: float, long_cot_tokens: int = 256, direct_max_words: int = 8) -> str:
    """The reasoning format of a completion (one of ``FORMATS``).

    A completion that opens with one of ARM's format tags is in that tag's format, but only when
    the tagged block holds something (``<CODE></CODE>`` followed by an answer is judged by what it
    holds, not by the tag it claims), and a ``<CODE>`` block only when it holds code (a code fence
    with a body, or a ``def``/``print``/``return`` line). Untagged, or tagged with nothing
    inside: ``code`` when it holds a code fence with a body; ``long_cot`` at ``length >=
    long_cot_tokens`` tokens; ``direct`` at most ``direct_max_words`` words; ``short_cot`` otherwise.
    """
    tagged = _TAGGED.match(text)
    if tagged and tagged.group(2).strip():
        claimed = FORMAT_TAGS[tagged.group(1).lower()]
        if claimed != "code" or _holds_code(tagged.group(2)):
            return claimed
    if any(block.strip() for block in _CODE_BLOCK.findall(text)):
        return "code"
    if length >= long_cot_tokens:
        return "long_cot"
    if len(_TAGS.sub(" ", text).split()) <= direct_max_words:
        return "direct"
    return "short_cot"


_TAGS = re.compile(r"</?\w+>")


def _holds_code(body: str) -> bool:
    return any(b.strip() for b in _CODE_BLOCK.findall(body)) or bool(
        re.search(r"^\s*(def |print\(|return |import |for .+:|[a-z_]\w* = )", body, re.MULTILINE)
    )


def cosine_decay(step: float, total: float) -> float:
    """``d(t) = ½(1 + cos(π t / T))``: 1 at ``t = 0``, 0 at ``t = T`` (and after)."""
    if total <= 0:
        return 0.0
    return 0.5 * (1.0 + math.cos(math.pi * min(max(step / total, 0.0), 1.0)))


def format_diversity_scale(format_count: float, group_size: float, decay: float) -> float:
    """Ada-GRPO's ``α = 1 + (G / F − 1) · d``: ``G / F`` at ``d = 1``, 1 at ``d = 0``, 1 when every
    member of the group shares the format (``F = G``)."""
    return 1.0 + (group_size / format_count - 1.0) * decay


@rewards.register("ada_grpo")
def ada_grpo_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    group_id: Sequence[Any] | None = None,
    completion_length: Sequence[int] | None = None,
    step: Sequence[int] | None = None,
    total_steps: Sequence[int] | None = None,
    long_cot_tokens: int = 256,
    direct_max_words: int = 8,
    **columns: Any,
) -> list[float]:
    """Ada-GRPO format-diversity scaled reward (Wu et al. 2025, "ARM: Adaptive Reasoning Model",
    arXiv:2505.20258).

    ``[B]``: ``r'_i = α_i(t) · r_i`` with ``r_i`` the task score and
    ``α_i(t) = 1 + (G/F(o_i) − 1)·d(t)`` (``format_diversity_scale``): ``F(o_i)`` counts the
    members of the group (size ``G``) in completion ``i``'s format (``reasoning_format``) and
    ``d(t) = ½(1 + cos(π t/T))`` (``cosine_decay``) with ``t = step − 1`` and ``T = total_steps − 1``,
    so the first step scales a singleton format by ``G`` and the last by 1. A wrong answer
    (``r = 0``) stays 0: a rare format is paid only when it is right.

    GUESS: the format of an untagged completion (``reasoning_format``: ``long_cot_tokens`` 256,
    ``direct_max_words`` 8; the paper's model writes ARM's format tags after supervised
    fine-tuning) and the decay's form (the spec's ``½(1 + cos)``; ARM decays ``G/F`` to 1 over the
    run).
    """
    size = len(completions)
    scores = need_column("ada_grpo", "task_score", task_score, size)
    lengths = need_column("ada_grpo", "completion_length", completion_length, size)
    steps = need_column("ada_grpo", "step", step, size)
    totals = need_column("ada_grpo", "total_steps", total_steps, size)
    formats = [
        reasoning_format(c, float(n), long_cot_tokens, direct_max_words)
        for c, n in zip(completions, lengths, strict=True)
    ]
    out = [float(s) for s in scores]
    for indices in groups_of(need_column("ada_grpo", "group_id", group_id, size)).values():
        counts = Counter(formats[i] for i in indices)
        for i in indices:
            decay = cosine_decay(float(steps[i]) - 1.0, float(totals[i]) - 1.0)
            out[i] *= format_diversity_scale(counts[formats[i]], len(indices), decay)
    return out
