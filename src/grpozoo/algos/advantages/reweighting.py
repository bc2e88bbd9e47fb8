"""Advantage estimators that reweight or reshape the group-relative advantage of each rollout:
by its confidence (ProGRPO), by a bounded behaviour term (ASPO), or by its length (HAPO).

Shapes: ``rewards [B]``, ``group_ids [B]``, ``ctx.sampling_logprobs / completion_mask [B, T]``.
"""

from __future__ import annotations

import math

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.groups import group_mean, group_std, group_weighted_mean
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def _float(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.to(like.dtype if like.is_floating_point() else torch.float32)


# ---------------------------------------------------------------- ProGRPO / ARM


def mean_logprob(logprobs: torch.Tensor, mask: torch.Tensor, fraction: float = 1.0) -> torch.Tensor:
    """Per-row mean log-prob over the ``ceil(fraction·L_i)`` lowest-probability real tokens, ``[B]``.

    ``fraction = 1`` is the mean over the whole completion; ``exp`` of it is the answer confidence.
    A row with no real token gets 0 (confidence 1).
    """
    real = mask.bool()
    lengths = real.sum(dim=1)
    keep = torch.ceil(lengths.double() * fraction).long().clamp(max=lengths)
    ascending = torch.sort(logprobs.double().masked_fill(~real, math.inf), dim=1).values
    chosen = torch.arange(logprobs.shape[1]).unsqueeze(0) < keep.unsqueeze(1)
    total = torch.where(chosen, ascending, torch.zeros_like(ascending)).sum(dim=1)
    return total / keep.clamp(min=1)


def group_normalised_weights(
    log_weights: torch.Tensor, group_ids: torch.Tensor, members: torch.Tensor
) -> torch.Tensor:
    """``w_i = exp(z_i) / mean_{j∈members of i's group} exp(z_j)`` for members, 1 elsewhere, ``[B]``.

    The weights of each group's members have mean exactly 1 (a softmax times the member count,
    computed stably in log space).
    """
    z = log_weights.double().masked_fill(~members, -math.inf)
    _, dense = torch.unique(group_ids, return_inverse=True)
    n = int(dense.max().item()) + 1 if dense.numel() else 0
    top = torch.full((n,), -math.inf, dtype=torch.float64).scatter_reduce_(0, dense, z, reduce="amax")
    top = torch.where(torch.isfinite(top), top, torch.zeros_like(top))
    shifted = torch.exp(z - top[dense])
    sums = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, shifted)
    count = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, members.double())
    weights = shifted * count[dense] / sums[dense].clamp(min=torch.finfo(torch.float64).tiny)
    return torch.where(members, weights, torch.ones_like(weights))


@advantages.register("prog_grpo")
def prog_grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    gamma: float = 1.0,
    confidence_fraction: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """ProGRPO's advantage re-weighting (Li et al. 2026, "Back to Basics: Revisiting Exploration in
    Reinforcement Learning for LLM Reasoning via Generative Probabilities", arXiv:2602.05281).

    Starts from the GRPO advantage. Each rollout's answer confidence is
    ``c_i = exp(mean sampling log-prob)`` (from ``ctx.sampling_logprobs`` over
    ``ctx.completion_mask``). Correct rollouts (``A_i > 0``) are reweighted,
    ``A_i ← A_i·w_i`` with ``w_i = (c̄/c_i)^γ`` renormalised to mean 1 over the group's positives,
    so over-confident correct paths are pushed less and low-probability correct paths more; the
    other rollouts keep their GRPO advantage. Equal confidences give GRPO exactly.

    GUESS (the abstract does not fix them): the multiplicative form, ``gamma = 1``, incorrect rollouts
    unchanged, and a fixed ``gamma``: the paper modulates it by the prompt's perplexity under the
    policy, and the pipeline does not compute prompt log-probs. ``confidence_fraction < 1``
    averages only the lowest-probability fraction of tokens (the paper's low-probability length
    normalisation); GUESS default 1 (all tokens). Shapes: ``rewards [B]`` -> ``[B]``.
    """
    base = grpo_advantage(rewards, group_ids, scale="group", eps=eps).double()
    confidence_log = mean_logprob(ctx.sampling_logprobs, ctx.completion_mask, confidence_fraction)
    positive = base > 0
    weights = group_normalised_weights(-gamma * confidence_log, group_ids, positive)
    return _float(base * weights, rewards)


# ---------------------------------------------------------------- ASPO


def bounded_shaping(advantages: torch.Tensor, shaping: torch.Tensor, k: float) -> torch.Tensor:
    """ASPO's bounded shaping (Lin & Xu 2025): ``A + clip(shaping, −k|A|, k|A|)``; keeps ``sign(A)``
    for ``k < 1``."""
    bound = k * advantages.abs()
    return advantages + torch.maximum(torch.minimum(shaping, bound), -bound)


def _behaviour_feature(ctx: Rollouts, feature: str, marker: str | None) -> torch.Tensor:
    lengths = ctx.completion_mask.sum(dim=1).double()
    if feature == "neg_length":
        return -lengths
    if feature == "first_marker":
        if not marker:
            raise ValueError("aspo: feature='first_marker' needs a non-empty `marker` string")
        texts = ctx.completion_token_texts or [[] for _ in range(len(lengths))]
        first = [next((j for j, t in enumerate(row) if marker in t), None) for row in texts]
        return torch.tensor(
            [-1.0 if j is None else -j / max(len(row), 1) for j, row in zip(first, texts, strict=True)],
            dtype=torch.float64,
        )
    if feature in ctx.reward_parts:
        return ctx.reward_parts[feature].double()
    raise ValueError(
        f"aspo: feature={feature!r} is neither 'neg_length', 'first_marker' nor a reward part "
        f"({', '.join(sorted(ctx.reward_parts)) or 'none'})"
    )


@advantages.register("aspo")
def aspo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    feature: str = "neg_length",
    marker: str | None = None,
    delta: float = 0.5,
    k: float = 0.5,
    eps: float = 1e-4,
) -> torch.Tensor:
    """ASPO, advantage shaping (Lin & Xu 2025, "Understanding Tool-Integrated Reasoning",
    arXiv:2508.19201): a behaviour term added to the GRPO advantage of correct rollouts, bounded so
    that correctness always dominates, ``A' = A + clip(δ·f̃, −k|A|, k|A|)``.

    ``f̃`` is the behaviour feature standardised among the group's correct rollouts (``A > 0``), so a
    feature that is constant there changes nothing. ``feature`` (higher = preferred):
    ``"neg_length"`` (shorter correct answers), ``"first_marker"`` (how early the first token
    containing ``marker`` occurs, ``−position/L``, −1 when absent: the paper's early code call with
    e.g. ``marker="```python"``), or the name of a reward part in ``ctx.reward_parts`` (NaN = no
    shaping). GUESS: ``delta = 0.5``, ``k = 0.5``, the default feature and the standardisation.
    Shapes: ``rewards [B]`` -> ``[B]``.
    """
    if not 0.0 <= k < 1.0:
        raise ValueError(f"aspo: k must be in [0, 1) so the sign of A is kept, got {k}")
    base = grpo_advantage(rewards, group_ids, scale="group", eps=eps).double()
    value = _behaviour_feature(ctx, feature, marker)
    shaped = (base > 0) & torch.isfinite(value)
    standardised = torch.zeros_like(base)
    if shaped.any():
        f, ids = value[shaped], group_ids[shaped]
        standardised[shaped] = (f - group_mean(f, ids)) / (group_std(f, ids) + eps)
    return _float(bounded_shaping(base, delta * standardised, k), rewards)


# ---------------------------------------------------------------- HAPO token-level group average


@advantages.register("hapo_length_weighted")
def hapo_length_weighted_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    eps: float = 1e-6,
    fallback_threshold: float = 5.0,
) -> torch.Tensor:
    """HAPO's token-level group average (Liu et al. 2025, "From Uniform to Heterogeneous: Tailoring
    Policy Optimization to Every Token's Nature", arXiv:2509.16591; the group-average part).

    The group mean and std are taken over tokens, i.e. each reward weighted by its completion
    length: ``μ = Σ L_i r_i / Σ L_i``, ``σ² = Σ L_i (r_i − μ)² / Σ L_i`` (population),
    ``A_i = (r_i − μ)/(σ + eps)``. If any ``|A| ≥ fallback_threshold`` in the batch, the whole batch
    falls back to the standard GRPO advantage (as the authors' code does). A group whose
    completions are all empty uses equal weights. Shapes: ``rewards [B]``, lengths from
    ``ctx.completion_mask [B, T]`` -> ``[B]``.
    """
    r = rewards.double()
    lengths = ctx.completion_mask.sum(dim=1).double()
    mu = group_weighted_mean(r, lengths, group_ids)
    sigma = group_weighted_mean((r - mu) ** 2, lengths, group_ids).sqrt()
    out = (r - mu) / (sigma + eps)
    if out.numel() and out.abs().max() >= fallback_threshold:
        return grpo_advantage(rewards, group_ids, scale="group", eps=eps)
    return _float(out, rewards)
