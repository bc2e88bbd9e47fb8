"""Group filters: ``fn(batch, **params) -> keep [B] bool``, which rows learn.

A filter runs after the rewards and, by default, before the advantages: the rows it drops take no
part in their group's statistics and receive no loss. Two fields of its registration
(:class:`grpozoo.registry.FilterSpec`) change how the trainer uses a filter (see docs/components.md):

- ``stage``: ``"before_advantages"`` (default) or ``"after_advantages"``: the rows count in their
  group's advantage statistics, then leave the batch (their loss is zero and they are not counted in
  the loss's token totals). A callable ``stage(**params)`` picks the stage from the parameters.
- ``refill=True``: when fewer than ``rollout.prompts_per_step`` groups survive, the trainer samples
  further rounds of fresh prompts, up to ``rollout.max_refill_rounds`` (DAPO's dynamic sampling).

Filters are pure: they read the batch (``rewards``, ``task_scores``, ``truncated``, ``group_ids``,
``step``, ``total_steps``) and return a mask. Shapes: ``B`` rows, ``G`` rows per group.

- ``dynamic_sampling``: drop groups whose reward spread is below a tolerance (DAPO).
- ``overlong_filter``: truncated completions get no loss, or leave the batch (DAPO).
- ``d3s_rollouts``: the size-k subset of each group with the largest advantage variance (D³S).
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from grpozoo.algos.groups import group_max, group_min, group_std
from grpozoo.algos.token_weights import scheduled_ratio
from grpozoo.registry import AFTER_ADVANTAGES, BEFORE_ADVANTAGES, group_filters
from grpozoo.rollouts import Rollouts


class NoLearnableGroupsError(RuntimeError):
    """Every generation round of a step was dropped by a refilling group filter."""


def check_keep(name: str, keep, batch_size: int) -> torch.Tensor:
    """``keep`` as a ``[B]`` bool tensor, or an error naming the filter."""
    if not isinstance(keep, torch.Tensor) or keep.dtype != torch.bool or tuple(keep.shape) != (batch_size,):
        shape = tuple(keep.shape) if isinstance(keep, torch.Tensor) else type(keep).__name__
        dtype = keep.dtype if isinstance(keep, torch.Tensor) else None
        raise ValueError(
            f"group filter {name!r} returned {shape} ({dtype}); a filter returns keep: a bool tensor of "
            f"shape ({batch_size},), one value per row"
        )
    return keep


def first_groups(group_ids: torch.Tensor, keep: torch.Tensor, n: int) -> torch.Tensor:
    """``keep`` restricted to the first ``n`` groups (in row order) that have a kept row: the batch
    a refilled step learns from holds ``rollout.prompts_per_step`` groups, as DAPO's does."""
    seen: list[int] = []
    for g in group_ids[keep].tolist():
        if g not in seen:
            seen.append(g)
    return keep & torch.isin(group_ids, torch.tensor(seen[:n], dtype=group_ids.dtype))


def count_groups(group_ids: torch.Tensor, keep: torch.Tensor) -> int:
    """The number of groups with at least one kept row."""
    return int(group_ids[keep].unique().numel())


def no_signal_message(
    filters: list[str], rounds: int, prompts: int, group_size: int, mean_reward: float, max_refill_rounds: int
) -> str:
    """The error of a step whose every round a refilling filter dropped: what happened and the remedy."""
    return (
        f"group filter {', '.join(repr(f) for f in filters)} kept no group: every group had the same reward "
        f"for {rounds} round(s) of {prompts} prompts × {group_size} rollouts, so none carries a learning "
        f"signal. The task is too hard or too easy for this model (mean reward {mean_reward:.3f}): change "
        f"the task's difficulty, raise rollout.group_size, or raise rollout.max_refill_rounds "
        f"(now {max_refill_rounds})"
    )


# ------------------------------------------------------------------ DAPO dynamic sampling


@group_filters.register("dynamic_sampling", refill=True)
def dynamic_sampling(
    batch: Rollouts,
    tol: float = 1e-6,
    spread: Literal["range", "std"] = "range",
    on: Literal["reward", "task_score"] = "reward",
) -> torch.Tensor:
    """DAPO's dynamic sampling (Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning
    System at Scale", arXiv:2503.14476): drop every group whose rewards are all (nearly) the same,
    since its group-relative advantages are 0 and it only dilutes the batch.

    A group is kept when its reward spread exceeds ``tol``: ``max − min`` (``spread="range"``) or the
    sample standard deviation (``"std"``), of ``batch.rewards`` (``on="reward"``, what the advantage
    sees) or of the verifier's ``batch.task_scores`` (``"task_score"``, DAPO's accuracy). Never an
    exact float comparison: rewards that differ by rounding noise (≤ ``tol``) count as equal. A
    single-row group has spread 0 and is dropped. ``refill = True``: the trainer samples further
    rounds of prompts until ``rollout.prompts_per_step`` groups are kept (at most
    ``rollout.max_refill_rounds`` more), as DAPO over-samples until its batch is full.
    GUESS: ``tol=1e-6``; ``on="reward"`` (verl's DAPO filters on accuracy: ``on=task_score``).
    Shapes: ``batch.rewards``, ``batch.group_ids [B]`` -> keep ``[B]`` bool.
    """
    if tol < 0:
        raise ValueError(f"dynamic_sampling: tol must be >= 0, got {tol}")
    if on not in ("reward", "task_score"):
        raise ValueError(f"dynamic_sampling: on={on!r} is not one of 'reward', 'task_score'")
    values = batch.rewards if on == "reward" else batch.task_scores
    if values is None:
        raise ValueError(
            f"dynamic_sampling: the batch has no {'rewards' if on == 'reward' else 'task_scores'} yet"
        )
    values = torch.nan_to_num(values.double())
    if spread == "range":
        width = group_max(values, batch.group_ids) - group_min(values, batch.group_ids)
    elif spread == "std":
        width = group_std(values, batch.group_ids)
    else:
        raise ValueError(f"dynamic_sampling: spread={spread!r} is not one of 'range', 'std'")
    return width > tol


# ------------------------------------------------------------------ overlong filtering


@group_filters.register(
    "overlong_filter",
    stage=lambda mode="mask", **_: AFTER_ADVANTAGES if mode == "mask" else BEFORE_ADVANTAGES,
)
def overlong_filter(batch: Rollouts, mode: Literal["mask", "drop"] = "mask") -> torch.Tensor:
    """DAPO's overlong filtering (Yu et al. 2025, "DAPO", arXiv:2503.14476, §3.4): a completion cut
    off by ``rollout.max_new_tokens`` (``batch.truncated``) receives no loss, since its reward
    punishes the length rather than the reasoning.

    ``mode="mask"`` (DAPO's): the truncated rows still count in their group's advantage statistics,
    then leave the batch (zero loss, not counted in the token totals). ``mode="drop"``: they are
    removed before the advantages, as if never sampled. Keep is ``~truncated``.
    Shapes: ``batch.truncated [B]`` -> keep ``[B]`` bool.
    """
    if mode not in ("mask", "drop"):
        raise ValueError(f"overlong_filter: mode={mode!r} is not one of 'mask', 'drop'")
    return ~batch.truncated.bool()


# ------------------------------------------------------------------ D³S rollout subset


def max_variance_subset(values: torch.Tensor, k: int) -> torch.Tensor:
    """Bool ``[n]``: the ``k`` entries of ``values`` whose (population) variance is largest.

    The best subset always consists of the ``j`` smallest and the ``k − j`` largest values for some
    ``j``: swapping an interior member for the nearest excluded value on the side away from the
    subset's mean raises its sum of squares. So the ``k + 1`` candidates are tried; ties go to the
    smallest ``j`` and, among equal values, to the earlier position. ``k ≥ n`` keeps everything.
    """
    n = values.numel()
    if k >= n:
        return torch.ones(n, dtype=torch.bool)
    order = torch.sort(values.double(), stable=True).indices
    best, best_var = None, -math.inf
    for j in range(k + 1):
        chosen = torch.cat([order[:j], order[n - (k - j) :]])
        var = float(values.double()[chosen].var(unbiased=False)) if k > 0 else 0.0
        if var > best_var + 1e-12:
            best, best_var = chosen, var
    keep = torch.zeros(n, dtype=torch.bool)
    keep[best] = True
    return keep


@group_filters.register(
    "d3s_rollouts",
    stage=lambda advantages_on="subset", **_: AFTER_ADVANTAGES if advantages_on == "group" else BEFORE_ADVANTAGES,
)
def d3s_rollouts(
    batch: Rollouts,
    ratio_start: float = 0.5,
    ratio_end: float = 1.0,
    schedule: Literal["linear", "cosine", "constant"] = "linear",
    min_keep: int = 2,
    advantages_on: Literal["subset", "group"] = "subset",
) -> torch.Tensor:
    """D³S sample-level down-sampling (Wang et al. 2025, "Learning More with Less: A Dynamic
    Dual-Level Down-Sampling Framework for Efficient Policy Optimization", arXiv:2509.22115).

    From each group of ``G`` rollouts keep the ``k`` whose advantages have the largest variance, with
    ``k = max(min_keep, ⌈ρ·G⌉)`` (at most ``G``) and ``ρ`` scheduled from ``ratio_start`` at the first
    step to ``ratio_end`` at ``batch.total_steps`` (:func:`grpozoo.algos.token_weights.scheduled_ratio`).
    For binary rewards that is as balanced as possible between successes and failures; in general
    the lowest ``j`` and highest ``k − j`` (:func:`max_variance_subset`), exact, not greedy.
    Example: rewards ``[1,0,0,0,0,0,1,0]``, ``k=4`` keeps both ones and two zeros.

    The ranking uses ``batch.advantages`` when they are set and ``[B]``, else the rewards: a
    group-relative advantage is an affine function of the rewards within a group, so the subset is
    the same. ``advantages_on="subset"`` (stage before the advantages) computes the advantages on the
    kept rows; ``"group"`` computes them on the whole group and then drops the other rows.
    ``ratio_start = ratio_end = 1`` keeps every row (a no-op). The token level is ``d3s_tokens``.
    GUESS: ``ratio_start=0.5``, ``ratio_end=1.0``, a ``linear`` schedule, ``min_keep=2`` (a variance
    needs two rollouts), ``advantages_on="subset"``.
    Shapes: ``batch.rewards`` or ``batch.advantages``, ``batch.group_ids [B]`` -> keep ``[B]`` bool.
    """
    for name, value in (("ratio_start", ratio_start), ("ratio_end", ratio_end)):
        if not 0.0 < value <= 1.0:
            raise ValueError(f"d3s_rollouts: {name} must lie in (0, 1], got {value}")
    if min_keep < 1:
        raise ValueError(f"d3s_rollouts: min_keep must be >= 1, got {min_keep}")
    if advantages_on not in ("subset", "group"):
        raise ValueError(f"d3s_rollouts: advantages_on={advantages_on!r} is not one of 'subset', 'group'")
    ratio = scheduled_ratio(batch.step, batch.total_steps, ratio_start, ratio_end, schedule)
    adv = batch.advantages
    ranked = adv if adv is not None and adv.dim() == 1 else batch.rewards
    if ranked is None:
        raise ValueError(
            "d3s_rollouts ranks rows by batch.advantages [B] or batch.rewards; the batch has neither yet"
        )
    values = torch.nan_to_num(ranked.detach().double())
    keep = torch.zeros(batch.batch_size, dtype=torch.bool)
    for group in batch.group_ids.unique():
        rows = (batch.group_ids == group).nonzero().squeeze(1)
        size = rows.numel()
        k = min(size, max(min_keep, math.ceil(ratio * size - 1e-9)))
        keep[rows] = max_variance_subset(values[rows], k)
    return keep
