"""Reward shaping on top of the task's verdict: flaw penalties, length switches and budgets,
outcome-gated process rewards, likelihood ranks.

Each reads the task's verifier score from the ``task_score`` column (a completion is correct when
``task_score >= correct_threshold``), so it replaces the ``task`` reward in a recipe rather than
being added to it. Lengths are in tokens (``completion_length``).
"""

from __future__ import annotations

import ast
import math
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

from grpozoo.registry import rewards
from grpozoo.rewards.common import check_range, correct_flags, groups_of, load_function, need_column
from grpozoo.rewards.extraction import extract_answer, last_boxed
from grpozoo.rewards.math import math_equal, normalize_answer

# ---------------------------------------------------------------------------------------------
# FAPO

ANSWER_STATEMENT = re.compile(
    r"(?:final answer|the answer|answer)\s*(?:is|=|:)\s*\$?([-+]?\d[\d,]*(?:\.\d+)?|\\frac\{[^{}]*\}\{[^{}]*\})",
    re.IGNORECASE,
)


def stated_answers(text: str) -> list[str]:
    """Every final answer the text states, in order: ``\\boxed{…}`` contents and "the answer is X"."""
    found: list[tuple[int, str]] = []
    start = 0
    while (position := text.find("\\boxed{", start)) >= 0:
        content = last_boxed(text[: _closing(text, position) + 1])
        if content is not None:
            found.append((position, content))
        start = position + 1
    found.extend((m.start(), m.group(1)) for m in ANSWER_STATEMENT.finditer(text))
    return [answer for _, answer in sorted(found)]


def _closing(text: str, position: int) -> int:
    depth = 0
    for index in range(text.index("{", position), len(text)):
        depth += {"{": 1, "}": -1}.get(text[index], 0)
        if depth == 0:
            return index
    return len(text) - 1


def contradicting_answer_detector(completions, prompts, extracted_answer=None, **columns) -> list[bool]:
    """Default FAPO flaw detector (GUESS): a correct completion is *flawed* when its reasoning states a
    final answer earlier that differs from the one it ends with (it reached the right answer after
    committing to a wrong one, or hedged between two)."""
    out = []
    for index, completion in enumerate(completions):
        final = extracted_answer[index] if extracted_answer is not None else None
        stated = stated_answers(completion)
        if final is None:
            final = stated[-1] if stated else None
        out.append(final is not None and any(not _same(earlier, str(final)) for earlier in stated))
    return out


def _same(a: str, b: str) -> bool:
    if normalize_answer(a) == normalize_answer(b):
        return True
    try:
        return math_equal(a, b)
    except ValueError:
        return False


@rewards.register("fapo")
def fapo_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    detector: str | Callable[..., Any] = "default",
    correct_threshold: float = 1.0,
    flaw_penalty: float = 1.0,
    **columns: Any,
) -> list[float]:
    """FAPO flawed-positive penalty (Ding et al. 2025, *FAPO: Flawed-Aware Policy Optimization for Efficient
    and Reliable Reasoning*, arXiv:2510.22543).

    ``[B]``: outcome reward +1 (correct) / −1 (wrong); a correct completion that the flaw detector
    flags is a *flawed positive* and gets ``1 − flaw_penalty`` (0). With a group-mean baseline its
    advantage is positive while the group's accuracy is low and negative once it is high. The
    detector runs on the correct completions only.

    ``detector``: ``"default"`` (``contradicting_answer_detector``), a callable, or
    ``"module:function"`` / ``"file.py:function"``, called as ``fn(completions, prompts, **columns)``
    on the correct subset (columns sliced alike) and returning one bool (flawed) per completion.
    GUESS: the default detector — the paper uses a generative reward model (FAPO-GenRM-4B) that
    names the first wrong step; the default flags a correct answer preceded by a different stated
    final answer.
    """
    size = len(completions)
    correct = correct_flags("fapo", task_score, size, correct_threshold)
    out = [1.0 if ok else -1.0 for ok in correct]
    chosen = [i for i in range(size) if correct[i]]
    if not chosen:
        return out
    fn = (
        contradicting_answer_detector
        if detector == "default"
        else load_function("fapo", "detector", detector)
    )
    sliced = {
        key: [values[i] for i in chosen]
        for key, values in {**columns, "task_score": task_score}.items()
        if isinstance(values, list | tuple) and len(values) == size
    }
    flags = fn([completions[i] for i in chosen], [prompts[i] for i in chosen], **sliced)
    if len(flags) != len(chosen):
        raise ValueError(
            f"reward 'fapo': the detector returned {len(flags)} flags for {len(chosen)} completions"
        )
    for index, flawed in zip(chosen, flags, strict=True):
        if flawed:
            out[index] = 1.0 - flaw_penalty
    return out


# ---------------------------------------------------------------------------------------------
# GRPO-λ


def kimi_length_reward(lengths: Sequence[float], correct: Sequence[bool]) -> list[float]:
    """Kimi-1.5 length reward over one group: ``λ_i = 0.5 − (L_i − L_min)/(L_max − L_min)`` for a
    correct completion, ``min(0, λ_i)`` for a wrong one; all 0 when every length is equal."""
    low, high = min(lengths), max(lengths)
    if high - low <= 0:
        return [0.0] * len(lengths)
    out = []
    for length, ok in zip(lengths, correct, strict=True):
        value = 0.5 - (length - low) / (high - low)
        out.append(value if ok else min(0.0, value))
    return out


@rewards.register("grpo_lambda")
def grpo_lambda_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    group_id: Sequence[Any] | None = None,
    completion_length: Sequence[int] | None = None,
    top_fraction: float = 0.2,
    length_weight: float = 1.0,
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """GRPO-λ length switch (Dai et al. 2025, *Stable Reinforcement Learning for Efficient Reasoning*,
    arXiv:2505.18086).

    ``[B]``: each group's correctness ratio ``c = #correct / G`` picks its rule. The groups of the
    batch are sorted by ``c`` (ties in batch order) and the top ``round(top_fraction · #groups)``
    of those with ``c > 0`` get the length-aware reward ``correct + length_weight · λ_i``
    (``kimi_length_reward``); every other group gets plain 0/1 correctness. With
    ``top_fraction = 0`` it is GRPO's reward; an all-wrong group always gets 0/1.

    GUESS: ``top_fraction`` (λ, 0.2), ``length_weight`` (1.0), and the length reward's form
    (Kimi-1.5's, over the group's own min/max length).
    """
    check_range("grpo_lambda", "top_fraction", top_fraction, 0.0, 1.0)
    size = len(completions)
    correct = correct_flags("grpo_lambda", task_score, size, correct_threshold)
    lengths = need_column("grpo_lambda", "completion_length", completion_length, size)
    groups = list(groups_of(need_column("grpo_lambda", "group_id", group_id, size)).values())
    out = [float(ok) for ok in correct]
    ratios = [sum(correct[i] for i in indices) / len(indices) for indices in groups]
    ranked = sorted((k for k in range(len(groups)) if ratios[k] > 0), key=lambda k: -ratios[k])
    for k in ranked[: int(top_fraction * len(groups) + 0.5)]:
        indices = groups[k]
        shaped = kimi_length_reward([float(lengths[i]) for i in indices], [correct[i] for i in indices])
        for index, bonus in zip(indices, shaped, strict=True):
            out[index] = float(correct[index]) + length_weight * bonus
    return out


# ---------------------------------------------------------------------------------------------
# Posterior-GRPO

EQUATION = re.compile(
    r"(?<![\w.])(\d+(?:\.\d+)?(?:\s*[-+*/×÷x]\s*\d+(?:\.\d+)?)+)\s*=\s*(-?\d+(?:\.\d+)?)(?![\w.])"
)


def arithmetic_consistency(completions, prompts, **columns) -> list[float]:
    """Default process score (GUESS): the share of the ``a op b … = c`` steps written in the completion
    whose arithmetic is right; 0 when it writes none. In [0, 1]."""
    out = []
    for completion in completions:
        checks = []
        for left, right in EQUATION.findall(completion):
            expression = left.replace("×", "*").replace("÷", "/").replace("x", "*")
            try:
                value = _arithmetic(ast.parse(expression, mode="eval").body)
            except (ZeroDivisionError, SyntaxError, ValueError):
                checks.append(False)
                continue
            checks.append(math.isclose(value, float(right), rel_tol=1e-6, abs_tol=1e-9))
        out.append(sum(checks) / len(checks) if checks else 0.0)
    return out


_OPERATORS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv}


def _arithmetic(node: ast.AST) -> float:
    """The value of a parsed ``a op b …`` made of numbers and + − × ÷ only."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int | float):
        return float(node.value)
    if isinstance(node, ast.BinOp) and type(node.op) in _OPERATORS:
        return _OPERATORS[type(node.op)](_arithmetic(node.left), _arithmetic(node.right))
    raise ValueError("not plain arithmetic")


@rewards.register("posterior_grpo")
def posterior_grpo_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    process: str | Callable[..., Any] = "default",
    format_style: str | None = None,
    format_weight: float = 0.0,
    outcome_weight: float = 1.0,
    process_weight: float = 0.5,
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """Posterior-GRPO outcome-gated process reward (Fan et al. 2025, *Posterior-GRPO: Rewarding
    Reasoning Processes in Code Generation*, arXiv:2508.05170).

    ``[B]``: ``r = w_f·r_format + w_o·r_outcome + 1[r_outcome = 1]·w_p·r_process``: the process score
    counts only for a successful outcome, so a failed completion cannot earn reward by its reasoning
    alone. ``r_outcome`` is 1 when correct else 0; ``r_format`` is 1 when the completion holds an
    answer in ``format_style`` (``boxed``, ``answer_tag``; ``None``: no format term). The process
    scorer is called on the correct completions only.

    ``process``: ``"default"`` (``arithmetic_consistency``), a callable or ``"module:function"`` /
    ``"file.py:function"``, called as ``fn(completions, prompts, **columns)`` and returning one
    float in [0, 1] per completion. GUESS: the default scorer (the paper trains a reasoning-quality
    reward model) and the weights ``format_weight`` 0, ``outcome_weight`` 1, ``process_weight`` 0.5.
    """
    size = len(completions)
    correct = correct_flags("posterior_grpo", task_score, size, correct_threshold)
    out = [outcome_weight * float(ok) for ok in correct]
    if format_style is not None and format_weight:
        for i, completion in enumerate(completions):
            out[i] += format_weight * float(extract_answer(completion, format_style) is not None)
    chosen = [i for i in range(size) if correct[i]]
    if chosen and process_weight:
        fn = (
            arithmetic_consistency
            if process == "default"
            else load_function("posterior_grpo", "process", process)
        )
        sliced = {
            key: [values[i] for i in chosen]
            for key, values in {**columns, "task_score": task_score}.items()
            if isinstance(values, list | tuple) and len(values) == size
        }
        scores = fn([completions[i] for i in chosen], [prompts[i] for i in chosen], **sliced)
        if len(scores) != len(chosen):
            raise ValueError(
                f"reward 'posterior_grpo': the process scorer returned {len(scores)} scores for {len(chosen)}"
            )
        for index, score in zip(chosen, scores, strict=True):
            out[index] += process_weight * float(score)
    return out


# ---------------------------------------------------------------------------------------------
# Unlikeliness reward


@rewards.register("unlikeliness")
def unlikeliness_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    group_id: Sequence[Any] | None = None,
    mean_logprob: Sequence[float] | None = None,
    beta_rank: float = 0.25,
    rank_among: str = "all",
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """Unlikeliness reward (He et al. 2025, *Rewarding the Unlikely: Lifting GRPO Beyond Distribution
    Sharpening*, arXiv:2506.02355).

    ``[B]``: ``r'_i = r_i · (1 − beta_rank · rank_i / G)`` with ``r`` the task score and ``rank_i``
    the position of the completion's length-normalised sampling log-prob (``mean_logprob``) in its
    group, 0 for the least likely and ``G − 1`` for the most likely (ties in batch order). A wrong
    answer (``r = 0``) stays 0; ``beta_rank = 0`` is GRPO.

    ``rank_among``: ``"all"`` ranks every member of the group, as the authors' code does
    (``argsort(argsort(old_logp))``), so the least likely right answer keeps ``r`` only when no wrong
    answer is less likely; ``"correct"`` ranks the right answers (``task_score >= correct_threshold``)
    among themselves, so the least likely right answer always keeps ``r``. ``G`` is the group size
    either way.
    """
    if rank_among not in ("all", "correct"):
        raise ValueError(f"reward 'unlikeliness': rank_among={rank_among!r} is not one of all, correct")
    size = len(completions)
    scores = need_column("unlikeliness", "task_score", task_score, size)
    logprobs = need_column("unlikeliness", "mean_logprob", mean_logprob, size)
    out = [float(s) for s in scores]
    correct = correct_flags("unlikeliness", task_score, size, correct_threshold)
    for indices in groups_of(need_column("unlikeliness", "group_id", group_id, size)).values():
        ranked = indices if rank_among == "all" else [i for i in indices if correct[i]]
        order = sorted(ranked, key=lambda i: float(logprobs[i]))  # stable: ties keep batch order
        for rank, index in enumerate(order):
            out[index] = out[index] * (1.0 - beta_rank * rank / len(indices))
    return out


# ---------------------------------------------------------------------------------------------
# Length budgets: Train Long, Think Short and S-GRPO's decaying reward


def budget_schedule(
    step: int, total_steps: int, start: float, final: float, schedule: str = "exponential"
) -> float:
    """Token budget ``B(t)`` decaying from ``start`` at step 1 to ``final`` at step ``total_steps``.

    ``exponential``: ``start · (final/start)^((t−1)/(T−1))``; ``linear``: straight line. Non-increasing
    when ``final <= start``; steps past ``total_steps`` keep ``final``.
    """
    if schedule not in ("exponential", "linear"):
        raise ValueError(f"budget schedule={schedule!r} is not one of exponential, linear")
    if start <= 0 or final <= 0:
        raise ValueError(f"budgets must be positive: budget_start={start}, budget_final={final}")
    progress = 1.0 if total_steps <= 1 else min(max((step - 1) / (total_steps - 1), 0.0), 1.0)
    if schedule == "linear":
        return start + (final - start) * progress
    return start * (final / start) ** progress


def budget_length_reward(length: float, budget: float, decay: str = "linear") -> float:
    """1 within the budget, then decaying: ``linear`` ``max(0, 1 − (L − B)/B)``, ``exponential``
    ``exp(−(L − B)/B)``. Non-increasing in ``L``, in [0, 1]."""
    if length <= budget:
        return 1.0
    over = (length - budget) / budget
    if decay == "linear":
        return max(0.0, 1.0 - over)
    if decay == "exponential":
        return math.exp(-over)
    raise ValueError(f"length decay={decay!r} is not one of linear, exponential")


@rewards.register("train_long_think_short")
def train_long_think_short_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    completion_length: Sequence[int] | None = None,
    step: Sequence[int] | None = None,
    total_steps: Sequence[int] | None = None,
    budget_start: float = 256.0,
    budget_final: float = 64.0,
    schedule: str = "exponential",
    decay: str = "linear",
    correct_weight: float = 1.0,
    length_weight: float = 0.5,
    format_weight: float = 0.25,
    format_style: str | None = "answer_tag",
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """Train Long, Think Short length-budget reward (Hammoud et al. 2025, *Train Long, Think Short:
    Curriculum Learning for Efficient Reasoning*, arXiv:2508.08940).

    ``[B]``: ``w_c·correct + w_len·len_reward(L, B(t)) + w_fmt·format``, where ``B(t)``
    (``budget_schedule``) decays from ``budget_start`` to ``budget_final`` tokens over the run and
    ``len_reward`` (``budget_length_reward``) is 1 within the budget. ``format`` is 1 when the
    completion holds an answer in ``format_style`` (``None``: no format term). Correctness
    dominates while ``correct_weight > length_weight + format_weight``.

    GUESS: the schedule (``exponential``), the decay beyond the budget (``linear``), the budgets
    (256 → 64 tokens, sized for short runs) and the weights (1, 0.5, 0.25).
    """
    size = len(completions)
    correct = correct_flags("train_long_think_short", task_score, size, correct_threshold)
    lengths = need_column("train_long_think_short", "completion_length", completion_length, size)
    steps = need_column("train_long_think_short", "step", step, size)
    totals = need_column("train_long_think_short", "total_steps", total_steps, size)
    out = []
    for i in range(size):
        budget = budget_schedule(int(steps[i]), int(totals[i]), budget_start, budget_final, schedule)
        value = correct_weight * float(correct[i]) + length_weight * budget_length_reward(
            float(lengths[i]), budget, decay
        )
        if format_style is not None and format_weight:
            value += format_weight * float(extract_answer(completions[i], format_style) is not None)
        out.append(value)
    return out


@rewards.register("s_grpo")
def s_grpo_reward(
    completions: list[str],
    prompts: list[str],
    task_score: Sequence[float] | None = None,
    group_id: Sequence[Any] | None = None,
    completion_length: Sequence[int] | None = None,
    exit_position: Sequence[int] | None = None,
    mode: str = "count",
    correct_threshold: float = 1.0,
    **columns: Any,
) -> list[float]:
    """S-GRPO decaying early-exit reward (Dai et al. 2025, *S-GRPO: Early Exit via Reinforcement
    Learning in Reasoning Models*, arXiv:2505.07686).

    ``[B]``: a wrong exit gets 0; a right exit gets ``1/2^k``. ``mode="count"`` (the paper): ``k`` is
    the number of right exits strictly earlier in the group (the first right exit gets 1, the next
    1/2, …); ``mode="position"`` (the simpler variant): ``k`` is the exit's position index among the
    group's distinct positions. Exits at the same position share a reward.

    Positions come from the ``exit_position`` column when the rollout provides serial groups (one
    trace cut at several points). GUESS: without it the group's independent completions stand in for
    exits, ordered by ``completion_length`` (shorter = earlier), which makes this a decaying length
    reward.
    """
    if mode not in ("count", "position"):
        raise ValueError(f"reward 's_grpo': mode={mode!r} is not one of count, position")
    size = len(completions)
    correct = correct_flags("s_grpo", task_score, size, correct_threshold)
    if exit_position is None:
        positions = need_column("s_grpo", "completion_length", completion_length, size)
    else:
        positions = need_column("s_grpo", "exit_position", exit_position, size)
    out = [0.0] * size
    for indices in groups_of(need_column("s_grpo", "group_id", group_id, size)).values():
        distinct = sorted({float(positions[i]) for i in indices})
        for i in indices:
            if not correct[i]:
                continue
            here = float(positions[i])
            if mode == "count":
                k = sum(1 for j in indices if correct[j] and float(positions[j]) < here)
            else:
                k = distinct.index(here)
            out[i] = 0.5**k
    return out


# ---------------------------------------------------------------------------------------------
# DAPO soft overlong penalty


@rewards.register("soft_overlong")
def soft_overlong_reward(
    completions: list[str],
    prompts: list[str],
    completion_length: Sequence[int] | None = None,
    max_length: int | None = None,
    cache_length: int | None = None,
    **columns: Any,
) -> list[float]:
    """DAPO's soft overlong punishment (Yu et al. 2025, *DAPO: An Open-Source LLM Reinforcement Learning
    System at Scale*, arXiv:2503.14476), added to the task reward.

    ``[B]``, in tokens: 0 while ``L <= max_length − cache_length``, then linear down to −1 at
    ``L = max_length``: ``(max_length − cache_length − L) / cache_length``; −1 beyond. Set
    ``max_length`` to the run's ``rollout.max_new_tokens``. ``cache_length`` defaults to a fifth
    of ``max_length`` (DAPO's 4096 of 20480).
    """
    if max_length is None or max_length <= 0:
        raise ValueError(
            f"reward 'soft_overlong' needs params.max_length > 0 (got {max_length!r}); set it to the "
            "run's rollout.max_new_tokens, e.g. rewards: [{name: soft_overlong, params: {max_length: 512}}]"
        )
    cache = max(1, round(max_length / 5)) if cache_length is None else cache_length
    if not 0 < cache <= max_length:
        raise ValueError(
            f"reward 'soft_overlong': cache_length={cache} must lie in (0, max_length={max_length}]"
        )
    lengths = need_column("soft_overlong", "completion_length", completion_length, len(completions))
    start = max_length - cache
    return [0.0 if L <= start else max(-1.0, (start - float(L)) / cache) for L in lengths]
