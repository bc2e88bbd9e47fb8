"""Built-in rewards, registered by name."""

from __future__ import annotations

from grpozoo.registry import rewards
from grpozoo.rewards.extraction import extract_answer
from grpozoo.rewards.math import math_equal


@rewards.register("task")
def task_reward(completions, prompts, task_score, **columns) -> list[float]:
    """The task's own verifier (reasoning-gym's scorer, or math-verify for files)."""
    return [float(s) for s in task_score]


@rewards.register("math_verify")
def math_verify_reward(completions, prompts, answer, answer_format: str = "last_number", **columns) -> list[float]:
    """1.0 when the extracted answer is math-verify-equivalent to the ``answer`` column."""
    out = []
    for completion, gold in zip(completions, answer, strict=True):
        extracted = extract_answer(completion, answer_format)
        out.append(0.0 if extracted is None else float(math_equal(extracted, str(gold))))
    return out


@rewards.register("format")
def format_reward(completions, prompts, style: str = "boxed", **columns) -> list[float]:
    """1.0 when the completion ends its reasoning with an answer in the asked-for format
    (``boxed``: a final ``\\boxed{}``; ``answer_tag``: ``<answer>…</answer>``)."""
    return [float(extract_answer(c, style) is not None) for c in completions]


# The verifiers, label-free rewards and shaping in their own modules register on import.
from grpozoo.rewards import (  # noqa: E402, F401
    consistency,
    format_diversity,
    label_free,
    preference_rewards,
    safety,
    shaping,
    structured,
    surrogate,
    sweet_spot,
    think_or_not,
    tools,
    user_feedback,
    verifiers,
)
