"""Curvature-aware token masks: reject the tokens (or sequences) whose policy-gradient step would
change the policy most, by a second-order (Fisher) estimate, and learn from the rest (CAPO).

A token weighting (``fn(ctx, **params) -> [B, T]``, see :mod:`grpozoo.algos.token_weights`).
Shapes: ``ctx.sampling_logprobs, ctx.action_mask [B, T]``, ``ctx.advantages [B]`` or ``[B, T]``.
"""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.masked import keep_real
from grpozoo.algos.token_weights import keep_top_fraction, token_advantages
from grpozoo.registry import token_weights
from grpozoo.rollouts import Rollouts


def logit_fisher_score(advantages: torch.Tensor, logprobs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Predicted KL change of each token's own policy-gradient step, from logit-space quantities:
    ``½ gᵀ F g`` with ``g = A·(e_y − π)`` the gradient of ``A·log π(y)`` in the logits and
    ``F = diag(π) − ππᵀ`` their Fisher. With ``p = π(y)``, ``s₂ = Σ_{v≠y} π_v²``, ``s₃ = Σ_{v≠y} π_v³``:
    ``gᵀFg = A²·(p(1 − p)³ + 2p(1 − p)·s₂ + s₃ − s₂²) ≥ A²·p(1 − p)³`` (Cauchy–Schwarz: ``s₂² ≤ (1 − p)s₃``),
    with equality when the remaining mass ``1 − p`` is spread thinly over many tokens. Only the
    sampled token's probability is known here, so the score is that lower bound,
    ``½·A²·p(1 − p)³``. Shapes: ``advantages, logprobs, mask [B, T]`` -> ``[B, T]`` (≥ 0, 0 on
    padding), no gradient."""
    p = logprobs.detach().double().clamp(max=0.0).exp()
    score = 0.5 * advantages.detach().double() ** 2 * p * (1.0 - p) ** 3
    return keep_real(score, mask)


@token_weights.register("capo_curvature")
def capo_curvature_mask(
    ctx: Rollouts,
    reject_fraction: float = 0.05,
    threshold: float | None = None,
    level: Literal["token", "sequence"] = "token",
) -> torch.Tensor:
    """CAPO's curvature-aware data selection (Melo, Abate & Gal 2025, "Stabilizing Policy Gradients for
    Sample-Efficient Reinforcement Learning in LLM Reasoning", arXiv:2510.00819).

    Scores each token's contribution to the update's curvature by the predicted KL change of its own
    step, :func:`logit_fisher_score` (its lower bound ``½A²p(1 − p)³``; ``A`` from ``ctx.advantages``,
    ``p`` from ``ctx.sampling_logprobs``), and masks out (weight 0) the highest-scoring ones: the top
    ``reject_fraction`` of the batch's real tokens, exactly ``⌈reject_fraction·N⌉`` (ties broken by
    position), or, with ``threshold``, every token scoring above it. ``level="sequence"`` scores each
    sequence by the sum over its tokens and rejects whole sequences (the top fraction of the batch's
    sequences), so the mask is constant within a sequence. Everything else keeps weight 1, so
    ``reject_fraction = 0`` or ``threshold = inf`` gives the base loss.
    GUESS: the paper's curvature model is the last layer's (features included), tracked over the
    update; here it is the logit-space Fisher of each token alone (no feature norm, no cross terms
    between tokens), and ``reject_fraction = 0.05`` (the paper rejects under 8% of tokens).
    Shapes: ``[B, T]`` -> ``[B, T]`` 0/1 (0 on padding and tool output).
    """
    if level not in ("token", "sequence"):
        raise ValueError(f"capo_curvature: level={level!r} is not one of 'token', 'sequence'")
    mask = ctx.action_mask.bool()
    score = logit_fisher_score(token_advantages(ctx), ctx.sampling_logprobs, mask)
    candidates = mask
    if level == "sequence":  # one score per sequence [B, 1]; the mask broadcasts over its tokens
        score, candidates = score.sum(dim=1, keepdim=True), mask.any(dim=1, keepdim=True)
    if threshold is not None:
        rejected = score > threshold
    else:
        rejected = keep_top_fraction(score, candidates, reject_fraction, "batch").bool()
    return (mask & ~rejected).float()
