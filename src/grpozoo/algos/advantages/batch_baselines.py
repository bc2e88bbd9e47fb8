"""Batch-baseline advantage estimators: REINFORCE-style baselines and normalisation over the whole
batch rather than (only) within a prompt's group."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.algos.groups import batch_whiten, group_mean
from grpozoo.registry import advantages


def _float(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype if like.is_floating_point() else torch.float32)


@advantages.register("reinforce_pp")
def reinforce_pp_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: object = None,
    eps: float = 1e-8,
    unbiased: bool = False,
) -> torch.Tensor:
    """REINFORCE++ global batch whitening (P0 baseline; Hu 2025, REINFORCE++: An Efficient RLHF
    Algorithm with Robustness to Both Prompt and Reward Models).

    ``A_i = (r_i − mean_B r)/(std_B r + eps)`` over the whole batch, ignoring the groups (population
    std by default, as OpenRLHF's masked whitening; ``unbiased`` for Bessel's correction). The recipe
    folds a k1 KL penalty into the reward (``kl.mode: reward``). A batch of equal rewards gets 0.
    Shapes: ``rewards [B]``, ``group_ids [B]`` (unused) -> ``[B]``.
    """
    return _float(batch_whiten(rewards, eps=eps, unbiased=unbiased), rewards)


@advantages.register("reinforce_pp_baseline")
def reinforce_pp_baseline_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: object = None,
    eps: float = 1e-8,
    unbiased: bool = False,
) -> torch.Tensor:
    """REINFORCE++-baseline (P0 baseline; Hu 2025, REINFORCE++): subtract the group mean (the prompt's
    baseline), then whiten the centred rewards over the batch, ``A = (c − mean_B c)/(std_B c + eps)``
    with ``c_i = r_i − mean_G r``. Unlike GRPO the scale is the batch's, not the group's, so groups
    with a small spread are not blown up. Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    centred = rewards.double() - group_mean(rewards.double(), group_ids)
    return _float(batch_whiten(centred, eps=eps, unbiased=unbiased), rewards)


@advantages.register("remax", needs={"baseline_rewards"})
def remax_advantage(rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Any) -> torch.Tensor:
    """ReMax greedy baseline (P0 baseline; Li et al. 2023, ReMax: A Simple, Effective, and Efficient
    Reinforcement Learning Method for Aligning Large Language Models).

    ``A_i = r_i − ctx.baseline_rewards[i]``: the baseline is the reward of one greedy completion of
    the same prompt, which the trainer generates because the estimator is registered with ``needs={"baseline_rewards"}``.
    Shapes: ``rewards [B]``, ``group_ids [B]`` (unused), ``ctx.baseline_rewards [B]`` -> ``[B]``.
    """
    baseline = getattr(ctx, "baseline_rewards", None)
    if baseline is None:
        raise ValueError(
            "remax advantage needs ctx.baseline_rewards (declared with needs={'baseline_rewards'})"
        )
    return _float(rewards.double() - torch.as_tensor(baseline, dtype=torch.float64), rewards)
