"""Batch-baseline advantage estimators: REINFORCE-style baselines and normalisation over the whole
batch rather than (only) within a prompt's group."""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.groups import group_mean
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def _float(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype if like.is_floating_point() else torch.float32)


def whiten_over_batch(
    values: torch.Tensor,
    mask: torch.Tensor,
    whiten: Literal["token", "sequence"] = "token",
    eps: float = 1e-8,
    unbiased: bool = False,
) -> torch.Tensor:
    """``(v − mean)/(std + eps)`` with one mean and std for the whole batch.

    ``values`` are one value per completion ``[B]`` (standing for each of its tokens) or per-token
    returns ``[B, T]``. ``whiten="token"`` weighs every completion token of the batch once, so a long
    completion counts more (REINFORCE++, Hu 2025, arXiv:2501.03262, as OpenRLHF's masked whitening);
    ``"sequence"`` weighs every completion once (its tokens ``1/L_i`` each), which for ``[B]`` values
    is the plain whitening of one value per completion. ``unbiased``: Bessel's correction over the
    tokens (``"token"``) or the completions (``"sequence"``). Completions without tokens are left out
    and get 0, as does padding. Shapes: ``values [B]`` or ``[B, T]``, ``mask [B, T]`` -> as ``values``.
    """
    if whiten not in ("token", "sequence"):
        raise ValueError(f"whiten={whiten!r} is not one of 'token', 'sequence'")
    m = mask.double()
    lengths = m.sum(dim=1)
    v = values.double()
    per_token = v.unsqueeze(1) if v.dim() == 1 else v
    weights = m if whiten == "token" else m / lengths.clamp(min=1).unsqueeze(1)
    count = weights.sum()
    mean = (weights * per_token).sum() / count.clamp(min=1)
    variance = (weights * (per_token - mean) ** 2).sum() / (count - 1 if unbiased else count).clamp(min=1)
    out = (v - mean) / (variance.sqrt() + eps)
    return _float(out * (m if v.dim() == 2 else lengths > 0), values)


@advantages.register("reinforce_pp", needs_group=False, kl_in_reward="returns")
def reinforce_pp_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    whiten: Literal["token", "sequence"] = "token",
    eps: float = 1e-8,
    unbiased: bool = False,
) -> torch.Tensor:
    """REINFORCE++ global batch whitening (Hu 2025, "REINFORCE++: An Efficient RLHF Algorithm with
    Robustness to Both Prompt and Reward Models", arXiv:2501.03262).

    The return of every completion token, ``G_t = r − β·Σ_{s≥t} kl_s`` with the k1 KL penalty the
    recipe folds into the reward (``kl.mode: reward``; the trainer hands these returns ``[B, T]`` in
    place of ``rewards``, see :func:`grpozoo.algos.advantages.reward_with_kl`), or the reward ``r``
    itself without a KL penalty, is whitened over the batch, ignoring the groups:
    ``A_t = (G_t − mean)/(std + eps)``, see :func:`whiten_over_batch`. ``whiten="token"`` (the
    paper's and OpenRLHF's) takes the mean and std over every completion token, so long completions
    weigh more; ``"sequence"`` over the completions. Population std by default, as OpenRLHF;
    ``unbiased`` for Bessel's correction. Equal returns everywhere get 0. A batch of one completion
    per prompt is fine (no group needed). Shapes: ``rewards [B]`` -> ``[B]``, or returns ``[B, T]``
    -> ``[B, T]`` (0 on padding); ``ctx.completion_mask [B, T]``; ``group_ids [B]`` unused.
    """
    return whiten_over_batch(rewards, ctx.completion_mask, whiten, eps, unbiased)


@advantages.register("reinforce_pp_baseline", kl_in_reward="returns")
def reinforce_pp_baseline_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    whiten: Literal["token", "sequence"] = "token",
    eps: float = 1e-8,
    unbiased: bool = False,
) -> torch.Tensor:
    """REINFORCE++-baseline (Hu 2025, "REINFORCE++: An Efficient RLHF Algorithm with Robustness to Both
    Prompt and Reward Models", arXiv:2501.03262): subtract the group mean of the reward (the prompt's
    baseline), then whiten over the batch as ``reinforce_pp`` does.

    ``c = r − mean_G r`` per completion; with the KL folded into the reward (``rewards`` are then the
    returns ``G_t = r − β·Σ_{s≥t} kl_s`` ``[B, T]``) the baseline is the group mean of the task reward
    ``ctx.rewards`` alone, ``c_t = G_t − mean_G r``, as OpenRLHF subtracts it before adding the KL.
    Then ``A = (c − mean)/(std + eps)`` over every completion token (``whiten="token"``, the
    default) or every completion (``"sequence"``), see :func:`whiten_over_batch`. Unlike GRPO the
    scale is the batch's, not the group's, so groups with a small spread are not blown up.
    Shapes: ``rewards [B]`` -> ``[B]``, or returns ``[B, T]`` -> ``[B, T]``; ``group_ids [B]``,
    ``ctx.rewards [B]``, ``ctx.completion_mask [B, T]``.
    """
    task_rewards = rewards if rewards.dim() == 1 else ctx.rewards
    if task_rewards is None:
        raise ValueError("reinforce_pp_baseline: per-token returns need ctx.rewards for the baseline")
    baseline = group_mean(task_rewards.double(), group_ids)
    centred = rewards.double() - (baseline if rewards.dim() == 1 else baseline.unsqueeze(1))
    return _float(whiten_over_batch(centred, ctx.completion_mask, whiten, eps, unbiased), rewards)


@advantages.register("remax", needs={"baseline_rewards"}, needs_group=False, kl_in_reward="sequence")
def remax_advantage(rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts) -> torch.Tensor:
    """ReMax greedy baseline (Li et al. 2023, "ReMax: A Simple, Effective, and Efficient Reinforcement
    Learning Method for Aligning Large Language Models", arXiv:2310.10505).

    ``A_i = r_i − ctx.baseline_rewards[i]``: the baseline is the reward of one greedy completion of
    the same prompt, which the trainer generates because the estimator is registered with
    ``needs={"baseline_rewards"}``; one sampled completion per prompt is enough. With the KL folded
    into the reward, ``r_i`` is the sequence return ``r_i − β·Σ_t kl_t`` while the greedy baseline
    stays the plain reward: a baseline that does not depend on the sample keeps the gradient
    estimate unbiased. Shapes: ``rewards [B]``, ``group_ids [B]`` (unused),
    ``ctx.baseline_rewards [B]`` -> ``[B]``.
    """
    if ctx.baseline_rewards is None:
        raise ValueError(
            "remax advantage needs ctx.baseline_rewards (declared with needs={'baseline_rewards'})"
        )
    return _float(rewards.double() - torch.as_tensor(ctx.baseline_rewards, dtype=torch.float64), rewards)
