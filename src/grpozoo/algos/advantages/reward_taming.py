"""Multi-reward aggregation that compresses large rewards before they are summed, then the group-
relative advantage of the sum."""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def log_tame(values: torch.Tensor) -> torch.Tensor:
    """``sign(r)·log(1 + |r|)``: monotone, odd, the identity's slope 1 at 0 and slope ``1/(1 + |r|)``
    elsewhere, so a large reward is compressed and a small one nearly kept. Any shape."""
    return torch.sign(values) * torch.log1p(values.abs())


def log_tamed_sum(parts: dict[str, torch.Tensor], weights: dict[str, float] | None = None) -> torch.Tensor:
    """``Σ_k w_k·log_tame(r_k)`` over the reward parts ``{name: [B]}`` (``w_k`` from ``weights``, 1 by
    default; NaN, a part's "no opinion", contributes 0). Returns ``[B]`` float64."""
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(parts))
    if unknown:
        raise ValueError(f"log-tamed aggregation: weights name unknown reward parts {unknown}; parts: {sorted(parts)}")
    first = next(iter(parts.values()))
    total = torch.zeros(first.shape, dtype=torch.float64)
    for name, part in parts.items():
        part = torch.as_tensor(part, dtype=torch.float64)
        total = total + weights.get(name, 1.0) * torch.where(part.isnan(), 0.0, log_tame(part))
    return total


@advantages.register("paco_log_tamed")
def paco_log_tamed_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    weights: dict[str, float] | None = None,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """PaCo-GRPO's log-tamed multi-reward aggregation (Ping et al. 2025, "PaCo-RL: Advancing
    Reinforcement Learning for Consistent Image Generation with Pairwise Reward Modeling",
    arXiv:2512.04784): each reward part is compressed before the parts are summed, so that no single
    reward dominates the total, then the GRPO advantage of the total.

    ``R_i = Σ_k w_k·sign(r_k,i)·log(1 + |r_k,i|)`` over the parts of ``ctx.reward_parts`` (the
    environment's logged counters, ``ctx.environment_parts``, left out; without parts, the total
    reward is the one part), then ``A_i = (R_i − mean_G R)/(std + eps)`` as :func:`grpo_advantage`
    with ``scale``. The total is monotone in every reward, and its sensitivity to a reward ``r``
    is ``w/(1 + |r|)`` instead of the plain sum's ``w``. With one binary part this is GRPO.
    GUESS: the compression ``sign(r)·log(1 + |r|)`` applied to every part (the abstract names a
    "log-tamed" aggregation without its exact rule) and ``weights`` (name -> weight, default 1
    each) applied after it. A KL penalty is not one of the parts, so ``algorithm.kl.mode=reward`` is
    refused. Shapes: ``rewards [B]``, ``group_ids [B]``, parts ``{name: [B]}`` -> ``[B]``.
    """
    parts = {k: v for k, v in ctx.reward_parts.items() if k not in ctx.environment_parts} or {"reward": rewards}
    total = log_tamed_sum(parts, weights)
    out = grpo_advantage(total, group_ids, ctx, scale=scale, eps=eps)
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
