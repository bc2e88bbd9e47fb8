"""Budgeted (anytime) advantages: every completion is also scored when cut at smaller thinking
budgets, and each token's advantage sums the budgets whose prefix holds it.

Qi et al. 2025, "Optimizing Anytime Reasoning via Budget Relative Policy Optimization"
(AnytimeReasoner, arXiv:2505.13438). The rollout side cuts each completion after ``b_j`` tokens,
forces the end of the thinking, lets the model answer in a few tokens and scores that answer (the
``budget_rewards`` provider in :mod:`grpozoo.training.providers`); this module turns those scores
into per-token advantages.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import torch

from grpozoo.algos.groups import group_mean, group_std
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts, required

# GUESS: budgets (completion tokens) below the whole completion, for the default 24-token rollouts;
# the whole completion is always the last budget
DEFAULT_BUDGETS = (6, 12, 18)
# GUESS: the text that ends the thinking at a budget, before the forced answer
DEFAULT_END_THINKING = "\n</think>\nThe final answer is "
DEFAULT_SUMMARY_TOKENS = 8  # GUESS: the forced answer's length


def budget_rewards_table(
    rewards: torch.Tensor, budget_rewards: torch.Tensor, lengths: torch.Tensor, budgets: Sequence[int]
) -> torch.Tensor:
    """The reward of every row at every budget, ``[B, M]`` with ``M = len(budgets) + 1``.

    ``budget_rewards [B, T+1]`` holds at position ``b`` the reward of the completion cut after its
    first ``b`` tokens (answer forced); a completion no longer than a budget (``L_i ≤ b_j``) finished
    its thinking within it, so its reward at that budget is its own reward ``rewards [B]``; the last
    column (the whole completion) is ``rewards``. ``lengths [B]`` are the completion lengths."""
    columns = []
    for b in budgets:
        inside = lengths > b
        at = budget_rewards[:, min(b, budget_rewards.shape[1] - 1)] if budget_rewards.shape[1] else rewards
        if bool(inside.any()) and bool(torch.isnan(at[inside]).any()):
            raise ValueError(f"budget_rewards holds no reward at budget {b} for a completion longer than it")
        columns.append(torch.where(inside, at.to(rewards.dtype), rewards))
    columns.append(rewards)
    return torch.stack(columns, dim=1)


def budget_token_sums(
    per_budget: torch.Tensor, budgets: Sequence[int], weights: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """``S[i, t] = Σ_{j: b_j > t} P_j · v[i, j]`` ``[B, T]`` (token ``t`` counted from 0 lies in the
    prefix of budget ``b_j`` when ``t < b_j``; the last budget is the whole completion), 0 on padding.

    ``per_budget [B, M]`` (``M = len(budgets) + 1``) holds a value per budget, ``weights [M]`` the
    prior ``P(b_j)``. With the rewards as values this is AnytimeReasoner's token return; it is
    piecewise constant between cut points and, for non-negative values, non-increasing in ``t``."""
    b, t = mask.shape
    ends = torch.tensor([*budgets, t], dtype=torch.long)  # the whole completion covers every token
    covers = (torch.arange(t).unsqueeze(0) < ends.unsqueeze(1)).to(per_budget.dtype)  # [M, T]
    weighted = per_budget * weights.to(per_budget.dtype).unsqueeze(0)  # [B, M]
    return (weighted @ covers) * mask.to(per_budget.dtype)


def budget_prior(num_budgets: int, prior: Sequence[float] | None) -> torch.Tensor:
    """``P(b_j)`` ``[M]``: ``prior`` normalised to sum 1 (uniform when None)."""
    if prior is None:
        return torch.full((num_budgets,), 1.0 / num_budgets, dtype=torch.float64)
    weights = torch.tensor(list(prior), dtype=torch.float64)
    if weights.numel() != num_budgets or bool((weights < 0).any()) or float(weights.sum()) <= 0:
        raise ValueError(
            f"anytime_brpo: prior needs {num_budgets} non-negative weights (one per budget and one for the "
            f"whole completion) with a positive sum, got {list(prior)}"
        )
    return weights / weights.sum()


def check_budgets(budgets: Sequence[int]) -> list[int]:
    out = [int(b) for b in budgets]
    if any(b <= 0 for b in out) or any(a >= b for a, b in zip(out, out[1:], strict=False)):
        raise ValueError(f"anytime_brpo: budgets must be positive and increasing, got {list(budgets)}")
    return out


@advantages.register("anytime_brpo", needs={"budget_rewards"})
def anytime_brpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    budgets: list[int] = list(DEFAULT_BUDGETS),  # noqa: B006 (read, never changed)
    prior: list[float] | None = None,
    previous_budget_weight: float = 0.5,
    scale: Literal["group", "none"] = "group",
    eps: float = 1e-4,
    end_thinking: str = DEFAULT_END_THINKING,
    summary_tokens: int = DEFAULT_SUMMARY_TOKENS,
    summary_temperature: float = 0.0,
) -> torch.Tensor:
    """Budget Relative Policy Optimization (Qi et al. 2025, "Optimizing Anytime Reasoning via Budget
    Relative Policy Optimization", arXiv:2505.13438).

    Each completion is scored at budgets ``b_1 < … < b_{M−1}`` (completion tokens) and as a whole
    (``b_M``): ``r_ij`` is the reward of its first ``b_j`` tokens with the thinking ended by
    ``end_thinking`` and a forced answer of up to ``summary_tokens`` tokens (read from
    ``ctx.budget_rewards [B, T+1]``, which the rollout side fills; ``end_thinking``,
    ``summary_tokens`` and ``summary_temperature`` are read there, not here). The objective is
    ``Σ_j P(b_j)·r_ij``, so token ``t`` gets the dense return ``Σ_{j: b_j > t} P(b_j)·r_ij``
    (:func:`budget_token_sums`). BRPO's variance reduction: the advantage at budget ``j`` is
    ``a_ij = r_ij − (w·r_{i,j−1} + (1 − w)·mean_G r_{·j})`` (the first budget: the group mean alone),
    divided by the group's reward std at that budget with ``scale="group"`` (not where the group's
    rewards at that budget are all equal: its advantages come from the previous budget only); token ``t`` gets
    ``Σ_{j: b_j > t} P(b_j)·a_ij``. With no budgets below the whole completion (``budgets=[]``) this
    is GRPO's advantage on every token.

    GUESS: the mixing weight ``previous_budget_weight = 0.5``, the per-budget group-std ``scale``,
    the budgets (6, 12, 18 tokens of the default 24), a uniform ``prior``, the ``end_thinking``
    text, an 8-token greedy (``summary_temperature = 0``) forced answer. The paper trains the
    summary policy separately with GRPO; here the forced answers are only scored, never learned.
    The whole completion is the thinking (the tasks here have no separate answer block).
    Shapes: ``rewards [B]``, ``group_ids [B]``, ``ctx.budget_rewards [B, T+1]`` -> ``[B, T]``.
    """
    if scale not in ("group", "none"):
        raise ValueError(f"anytime_brpo: scale={scale!r} is not one of 'group', 'none'")
    if not 0.0 <= previous_budget_weight <= 1.0:
        raise ValueError(f"anytime_brpo: previous_budget_weight must lie in [0, 1], got {previous_budget_weight}")
    cuts = check_budgets(budgets)
    mask = ctx.completion_mask
    values = rewards.double()
    given = ctx.budget_rewards
    if cuts:
        given = required(given, "ctx.budget_rewards", "anytime_brpo").double()
    else:
        given = values.new_zeros((values.shape[0], 0))
    table = budget_rewards_table(values, given, ctx.completion_lengths, cuts)  # [B, M]
    advantages_per_budget = torch.empty_like(table)
    for j in range(table.shape[1]):
        column = table[:, j]
        baseline = group_mean(column, group_ids)
        if j > 0:
            baseline = previous_budget_weight * table[:, j - 1] + (1 - previous_budget_weight) * baseline
        centred = column - baseline
        if scale == "group":  # a group whose rewards at this budget are all equal is not scaled
            spread = group_std(column, group_ids)
            centred = centred / torch.where(spread > eps, spread + eps, torch.ones_like(spread))
        advantages_per_budget[:, j] = centred
    weights = budget_prior(table.shape[1], prior)
    return budget_token_sums(advantages_per_budget, cuts, weights, mask).to(rewards.dtype)
