"""Advantages shaped by the completion's own token entropy."""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def mean_token_entropy(entropies: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``entropies [B, T]`` over each row's real tokens, ``[B]`` (0 for an empty row)."""
    m = mask.to(entropies.dtype)
    return (torch.nan_to_num(entropies) * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)


@advantages.register("gtpo", needs={"entropies"})
def gtpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    threshold: float = 0.7,
    coef: float = 0.1,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> AdvantageOutput:
    """GTPO entropy filter (Simoni et al. 2025, "GTPO: Trajectory-Based Policy Optimization in Large
    Language Models", arXiv:2508.03772; the entropy step, checked against the authors' repository).

    Starts from the GRPO advantage (``scale``, ``eps`` as in ``grpo``). With ``H̄_i`` the mean token
    entropy of completion i over its real tokens (``ctx.entropies``): a completion with
    ``H̄_i > threshold`` (0.7 ≈ ln 2) gets ``A_i = 0``; otherwise ``A_i ← A_i − coef·H̄_i``
    (coef 0.1), every completion included, as in the repository (so a group whose rewards are all
    equal gets ``−coef·H̄_i``).

    The repository measures the entropy under the learner's current logits; here it is the entropy
    of the sampling distribution recorded by the generator, the same thing for an on-policy step at
    temperature 1. Hands on ``extras``: ``gtpo_unshaped_advantage`` (the GRPO advantage before
    shaping, which ``gtpo_conflict`` uses to tell positive from negative completions) and
    ``gtpo_mean_entropy``.
    Shapes: ``rewards [B]``, ``group_ids [B]``, ``ctx.entropies, ctx.completion_mask [B, T]`` -> ``[B]``.
    """
    if ctx.entropies is None:
        raise ValueError("gtpo advantage reads ctx.entropies, which the generator did not record")
    base = grpo_advantage(rewards, group_ids, ctx, scale=scale, eps=eps)
    h_mean = mean_token_entropy(ctx.entropies.detach(), ctx.completion_mask).to(base.dtype)
    shaped = torch.where(h_mean > threshold, torch.zeros_like(base), base - coef * h_mean)
    return AdvantageOutput(
        advantages=shaped,
        extras={"gtpo_unshaped_advantage": base, "gtpo_mean_entropy": h_mean},
    )
