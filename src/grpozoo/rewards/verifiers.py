"""The math verifier reward: the lessons of Huang et al. 2025 (verifier pitfalls) applied to a whole
completion."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from grpozoo.registry import rewards
from grpozoo.rewards.common import need_column
from grpozoo.rewards.extraction import extract_answer, last_boxed
from grpozoo.rewards.math import math_equal, normalize_answer


def boxed_answers(text: str) -> list[str]:
    """The contents of every ``\\boxed{…}`` in ``text``, in order (nested braces balanced)."""
    out = []
    start = 0
    while (position := text.find("\\boxed{", start)) >= 0:
        depth = 0
        for index in range(position + len("\\boxed"), len(text)):
            depth += {"{": 1, "}": -1}.get(text[index], 0)
            if depth == 0:
                content = last_boxed(text[: index + 1])
                if content is not None:
                    out.append(content)
                break
        start = position + 1
    return out


def conflicting_boxed(text: str) -> bool:
    """Whether the completion boxes two or more answers that are not all the same (a multi-answer)."""
    boxed = boxed_answers(text)
    if len(boxed) < 2:
        return False
    first = boxed[0]
    for other in boxed[1:]:
        if normalize_answer(other) == normalize_answer(first):
            continue
        try:
            if not math_equal(other, first):
                return True
        except ValueError:  # the first box holds no expression: the texts differ, so they conflict
            return True
    return False


def verify_completion(
    completion: str, gold: str, answer: str | None, reject_conflicting: bool = True
) -> bool:
    """The verdict on one completion: its extracted ``answer`` is equivalent to ``gold``
    (``math_equal``), and, with ``reject_conflicting``, it does not box several different answers."""
    if answer is None:
        # still read the gold, so that an unreadable gold is an error here too
        math_equal("", gold)
        return False
    if reject_conflicting and conflicting_boxed(completion):
        math_equal("", gold)
        return False
    return math_equal(answer, gold)


@rewards.register("math_verifier")
def math_verifier_reward(
    completions: list[str],
    prompts: list[str],
    answer: Sequence[Any] | None = None,
    extracted_answer: Sequence[str | None] | None = None,
    answer_format: str = "task",
    reject_conflicting: bool = True,
    **columns: Any,
) -> list[float]:
    """Math verifier following Huang et al. 2025, *Pitfalls of Rule- and Model-based Verifiers -- A Case
    Study on Mathematical Reasoning* (arXiv:2505.22203).

    ``[B]``: 1.0 when the completion's final answer is equivalent to the ``answer`` column under
    ``grpozoo.rewards.math.math_equal`` (normalisation, then math-verify's symbolic equivalence),
    else 0.0. Empty, hedged ("either 2 or 3") and, with ``reject_conflicting``, multi-answer
    completions (several different ``\\boxed{}``) score 0. A gold answer math-verify cannot read
    raises ``ValueError`` (never a free reward).

    ``answer_format``: ``task`` reads the task's own extraction (the ``extracted_answer`` column);
    ``boxed``, ``answer_tag``, ``last_number`` or ``full`` extract from the completion here.
    Not built: the paper's optional model-based fallback for rule negatives.
    """
    size = len(completions)
    golds = need_column("math_verifier", "answer", answer, size)
    if answer_format == "task":
        answers = need_column("math_verifier", "extracted_answer", extracted_answer, size)
    else:
        answers = [extract_answer(c, answer_format) for c in completions]
    out = []
    for index, (completion, gold, found) in enumerate(zip(completions, golds, answers, strict=True)):
        try:
            out.append(float(verify_completion(completion, str(gold), found, reject_conflicting)))
        except ValueError as error:
            raise ValueError(f"reward 'math_verifier', sample {index}: {error}") from error
    return out
