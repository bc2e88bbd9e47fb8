"""Prompt-level advantage weighting: each group's advantages scaled by a factor chosen from what its
rollouts show this step (ADORA).

Shapes: ``rewards [B]``, ``group_ids [B]``; a predicate returns ``[B]`` bool, constant within a group.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.groups import group_sum
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts

# predicate(rewards [B], group_ids [B], ctx, correct [B] bool) -> advantageous [B] bool (per group)
Predicate = Callable[[torch.Tensor, torch.Tensor, Rollouts, torch.Tensor], torch.Tensor]


def _group_mean_over(values: torch.Tensor, members: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over the group's ``members`` ([B] bool), broadcast to ``[B]``; NaN where a
    group has none."""
    total = group_sum(values.double() * members, group_ids)
    count = group_sum(members.double(), group_ids)
    return torch.where(count > 0, total / count.clamp(min=1), torch.full_like(total, float("nan")))


def _mean_lengths(group_ids: torch.Tensor, ctx: Rollouts, correct: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean length (the model's own tokens, ``ctx.action_mask``) of the group's right and of its wrong
    rollouts, ``[B]`` each; NaN where the group has none of that class."""
    lengths = ctx.action_mask.sum(dim=1).double()
    return _group_mean_over(lengths, correct, group_ids), _group_mean_over(lengths, ~correct, group_ids)


def correct_longer(
    rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts, correct: torch.Tensor
) -> torch.Tensor:
    """ADORA's length criterion: a group is advantageous when its right rollouts are on average
    longer than its wrong ones, which favours long reasoning. A group without both a right and a
    wrong rollout is advantageous (nothing to compare; GUESS). Shapes: ``[B]`` -> ``[B]`` bool."""
    right, wrong = _mean_lengths(group_ids, ctx, correct)
    return right.isnan() | wrong.isnan() | (right > wrong)


def correct_shorter(
    rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts, correct: torch.Tensor
) -> torch.Tensor:
    """The opposite length criterion (favours concise answers): right rollouts shorter on average than
    wrong ones; a group without both classes is advantageous. Shapes: ``[B]`` -> ``[B]`` bool."""
    right, wrong = _mean_lengths(group_ids, ctx, correct)
    return right.isnan() | wrong.isnan() | (right < wrong)


PREDICATES: dict[str, Predicate] = {"correct_longer": correct_longer, "correct_shorter": correct_shorter}


@advantages.register("adora")
def adora_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    predicate: Literal["correct_longer", "correct_shorter"] | Predicate = "correct_longer",
    factor: float = 0.1,
    threshold: float = 0.5,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """ADORA's dynamic advantage weighting (Ren et al. 2026, "ADORA: Training Reasoning Models with
    Dynamic Advantage Estimation on Reinforcement Learning", arXiv:2602.10019).

    After each rollout, every prompt is classified from its group's rollouts as temporarily
    advantageous or disadvantageous by ``predicate``; the GRPO advantages (``scale`` as in ``grpo``)
    of a disadvantageous prompt's group are multiplied by ``factor``, the others kept. ``factor ≥ 0``,
    so no advantage changes sign. ``predicate`` is a name (``"correct_longer"``: the mean length of
    the right rollouts exceeds that of the wrong ones, the public recipe's criterion;
    ``"correct_shorter"``) or, from Python, any callable ``(rewards, group_ids, ctx, correct) -> [B]
    bool``; a rollout is right when ``reward ≥ threshold``.
    GUESS: ``factor = 0.1``; a group with no right or no wrong rollout counts as advantageous.
    Shapes: ``rewards, group_ids [B]``, ``ctx.action_mask [B, T]`` -> ``[B]``.
    """
    if factor < 0:
        raise ValueError(f"adora: factor must be ≥ 0 so no advantage changes sign, got {factor}")
    if isinstance(predicate, str):
        if predicate not in PREDICATES:
            raise ValueError(f"adora: unknown predicate {predicate!r}; choose among {', '.join(PREDICATES)}")
        predicate = PREDICATES[predicate]
    base = grpo_advantage(rewards, group_ids, scale=scale, eps=eps)
    advantageous = predicate(rewards, group_ids, ctx, rewards >= threshold).bool()
    return torch.where(advantageous, base, base * factor)
