"""Token-entropy normalisation shared by entropy-aware losses (HAPO, DHPO, SSPO).

Shapes: ``entropies [B, T]`` (entropy of the sampling distribution at each generated token, as in
``ctx.entropies``) and ``mask [B, T]`` (1 on real tokens). Every statistic is taken over the masked
tokens of the tensors given; padding never influences it, and the results are 0 on padding.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from grpozoo.algos.masked import keep_real, masked_mean


class EntropyNorm(NamedTuple):
    """The statistics of HAPO's entropy score: ``ĥ = scale · (log H − pivot) / rms``, with ``scale_pos``
    for tokens above the pivot and ``scale_neg`` (≥ 0) for those below. Scalars (0-dim tensors)."""

    pivot: torch.Tensor
    rms: torch.Tensor
    scale_pos: torch.Tensor
    scale_neg: torch.Tensor


def hapo_entropy_stats(
    entropies: torch.Tensor, mask: torch.Tensor, pivot_quantile: float = 0.5, eps: float = 1e-8
) -> EntropyNorm:
    """HAPO part (a), the statistics: over the masked tokens, ``pivot`` is the ``pivot_quantile``
    quantile of ``log H`` (nearest rank, as the authors' code), ``rms`` the root mean square of
    ``log H − pivot``, and ``scale_pos`` / ``scale_neg`` one over the largest positive / largest
    negative magnitude of the centred, RMS-divided score.

    Kept separate from :func:`hapo_normalized_entropy` so that a later stage (HAPO's adaptive sampling
    temperature, part (b), which uses the previous step's statistics) can reuse them.
    GUESS: ``pivot_quantile`` 0.5 (the median); the authors' code exposes it as ``entropy_pivot``.
    """
    valid = mask > 0
    log_h = torch.log(entropies.detach().float().clamp_min(eps))
    values = log_h[valid]
    one = log_h.new_ones(())
    if values.numel() == 0:
        return EntropyNorm(log_h.new_zeros(()), one, one, one)
    pivot = torch.quantile(values, pivot_quantile, interpolation="nearest")
    centred = values - pivot
    rms = centred.pow(2).mean().clamp_min(eps).sqrt()
    scaled = centred / rms
    scale_pos = 1.0 / scaled.max().clamp_min(eps)
    scale_neg = 1.0 / (-scaled.min()).clamp_min(eps)
    return EntropyNorm(pivot, rms, scale_pos, scale_neg)


def apply_hapo_entropy_norm(
    entropies: torch.Tensor, mask: torch.Tensor, stats: EntropyNorm, eps: float = 1e-8
) -> torch.Tensor:
    """``ĥ [B, T]`` from given :class:`EntropyNorm` statistics, clamped to ``[−1, 1]`` (tokens beyond
    the statistics' batch extremes, e.g. with last step's statistics, saturate); 0 on padding."""
    h = (torch.log(entropies.detach().float().clamp_min(eps)) - stats.pivot) / stats.rms
    h_hat = torch.where(h > 0, h * stats.scale_pos, h * stats.scale_neg).clamp(-1.0, 1.0)
    return (h_hat * (mask > 0)).to(entropies.dtype if entropies.is_floating_point() else torch.float32)


def hapo_normalized_entropy(
    entropies: torch.Tensor, mask: torch.Tensor, pivot_quantile: float = 0.5, eps: float = 1e-8
) -> torch.Tensor:
    """HAPO part (a) (Liu et al. 2025, "From Uniform to Heterogeneous: Tailoring Policy Optimization to
    Every Token's Nature", arXiv:2509.16591): the entropy score ``ĥ ∈ [−1, 1]`` of every token.

    1. ``log H`` (H clamped at ``eps``), 2. minus the ``pivot_quantile`` quantile over the masked tokens,
    3. divided by the masked RMS, 4. positives divided by the largest positive, negatives by the
    largest negative magnitude. So over the masked tokens ``max ĥ = 1`` and ``min ĥ = −1`` (when both
    signs occur), ``ĥ = 0`` at the pivot and for every token when all entropies are equal. Step 3 does
    not change the result (step 4 rescales each side); it is kept to match the authors' code and the
    statistics of :func:`hapo_entropy_stats`. The score is detached.
    Shapes: ``entropies, mask [B, T]`` -> ``[B, T]``, 0 on padding.
    """
    return apply_hapo_entropy_norm(
        entropies, mask, hapo_entropy_stats(entropies, mask, pivot_quantile, eps), eps
    )


def standardized_entropy(entropies: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Batch-standardised entropy ``(H − mean H) / (std H + eps)`` over the masked tokens (population
    std), detached; 0 on padding and for every token when all entropies are equal. DHPO's ``ĥ``
    (Min et al. 2026, arXiv:2601.05607).
    Shapes: ``entropies, mask [B, T]`` -> ``[B, T]``.
    """
    h = entropies.detach()
    mean = masked_mean(h, mask)
    std = masked_mean((h - mean).pow(2), mask).sqrt()
    return keep_real((h - mean) / (std + eps), mask)

