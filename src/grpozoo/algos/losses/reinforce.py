"""REINFORCE-family policy losses: the advantage-weighted log-likelihood, with no PPO min/clip surrogate.

Plain REINFORCE, and the REC family (Yao et al. 2025, "Group-Relative REINFORCE Is Secretly an
Off-Policy Algorithm: Demystifying Some Myths About GRPO and Its Friends", arXiv:2509.24203):
clipping re-read as a token mask, optional importance or advantage weights, the k2 / forward-KL
regularisers, with its two named instances OPMD and AsymRE.
"""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.losses import broadcast_advantages
from grpozoo.algos.masked import (
    LOG_RATIO_CLAMP,
    keep_real,
    mask_outputs,
    row_mean,
    token_log_ratio,
    token_ratio,
)
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts


@losses.register("reinforce")
def reinforce_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    importance_weight: Literal["none", "ratio"] = "none",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Plain REINFORCE (baseline; Williams 1992): no ratio in the gradient's weight, no clip.

    - ``importance_weight="none"``: ``loss = −A·logp``; gradient ``−A·∇logp`` whatever the
      behaviour policy (the on-policy estimator, used as is on stale data).
    - ``importance_weight="ratio"``: ``loss = −ρ·A`` with ``ρ = exp(logp − old_logp)``; gradient
      ``−ρ·A·∇logp``, the importance-sampled off-policy form (PPO's surrogate without the clip).

    On one on-policy pass (``old_logp = logp.detach()``) both give the same gradient.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``ratio`` (per token).
    """
    adv = broadcast_advantages(advantages, logp)
    ratio = token_ratio(logp, old_logp, mask)
    if importance_weight == "none":
        loss = -adv * keep_real(logp, mask)
    elif importance_weight == "ratio":
        loss = -adv * ratio
    else:
        raise ValueError(f"reinforce: importance_weight={importance_weight!r} is not 'none' or 'ratio'")
    return mask_outputs(loss, {"ratio": ratio}, mask)


# ------------------------------------------------------------------ REC / OPMD / AsymRE

ClipMode = Literal["none", "one_side", "two_side", "ring", "one_side_sequence"]
RecWeight = Literal["none", "importance", "sequence_importance", "advantage"]


def _rec_keep(
    clip_mode: str,
    ratio: torch.Tensor,
    seq_ratio: torch.Tensor,
    adv: torch.Tensor,
    eps_low: float,
    eps_high: float,
    eps_low_prime: float,
    eps_high_prime: float,
) -> torch.Tensor:
    """REC's keep mask (bool, broadcast to ``ratio``): which tokens' REINFORCE terms survive."""
    lo, hi = 1.0 - eps_low, 1.0 + eps_high
    pos, neg = adv >= 0, adv <= 0
    if clip_mode == "none":
        return torch.ones_like(ratio, dtype=torch.bool)
    if clip_mode == "two_side":
        return (ratio >= lo) & (ratio <= hi)
    if clip_mode == "one_side":
        return (pos & (ratio <= hi)) | (neg & (ratio >= lo))
    if clip_mode == "one_side_sequence":
        return ((pos & (seq_ratio <= hi)) | (neg & (seq_ratio >= lo))).expand_as(ratio)
    if clip_mode == "ring":
        inner = (ratio >= lo) & (ratio <= hi)
        return inner | (pos & (ratio <= 1.0 - eps_low_prime)) | (neg & (ratio >= 1.0 + eps_high_prime))
    raise ValueError(
        f"rec: clip_mode={clip_mode!r} is not one of 'none', 'one_side', 'two_side', 'ring', 'one_side_sequence'"
    )


def _rec(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    clip_mode: str = "none",
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    eps_low_prime: float = 0.6,
    eps_high_prime: float = 2.0,
    weight: str = "none",
    temp: float = 1.0,
    k2_coef: float = 0.0,
    forward_kl_coef: float = 0.0,
    baseline_shift: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The one REC computation behind ``rec``, ``opmd`` and ``asymre``:
    ``loss = −(A+shift)·w·logp·keep + k2·(logp − old_logp)² − c_fkl·logp``, ``w`` and ``keep`` detached."""
    adv = broadcast_advantages(advantages, logp) + baseline_shift
    log_ratio = token_log_ratio(logp, old_logp, mask)
    ratio = torch.exp(log_ratio).detach()
    seq_ratio = torch.exp(row_mean(log_ratio, mask)).detach().unsqueeze(1)
    keep = _rec_keep(clip_mode, ratio, seq_ratio, adv, eps_low, eps_high, eps_low_prime, eps_high_prime)
    if weight == "none":
        w = torch.ones_like(ratio)
    elif weight == "importance":
        w = ratio
    elif weight == "sequence_importance":
        w = seq_ratio.expand_as(ratio)
    elif weight == "advantage":  # A·exp(A/temp), unnormalised, as in the authors' code
        w = torch.exp((adv / temp).clamp(max=LOG_RATIO_CLAMP)).expand_as(ratio)
    else:
        raise ValueError(
            f"rec: weight={weight!r} is not one of 'none', 'importance', 'sequence_importance', 'advantage'"
        )
    lp = keep_real(logp, mask)
    loss = -adv * w * lp * keep.to(lp.dtype)
    if k2_coef:
        loss = loss + k2_coef * keep_real(logp - old_logp, mask).square()
    if forward_kl_coef:
        loss = loss - forward_kl_coef * lp
    return mask_outputs(loss, {"ratio": ratio, "clip_fraction": ~keep}, mask)


@losses.register("rec")
def rec_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    clip_mode: ClipMode = "none",
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    eps_low_prime: float = 0.6,
    eps_high_prime: float = 2.0,
    weight: RecWeight = "none",
    temp: float = 1.0,
    regularizer: Literal["none", "k2", "forward_kl"] = "none",
    regularizer_coef: float = 0.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """REC (Yao et al. 2025, "Group-Relative REINFORCE Is Secretly an Off-Policy Algorithm: Demystifying
    Some Myths About GRPO and Its Friends", arXiv:2509.24203).

    REINFORCE with the ratio detached, where clipping becomes a *mask* on tokens:
    ``loss = −A·w·logp·keep (+ regulariser)``, with ``ρ = exp(logp − old_logp)`` and

    - ``clip_mode``: ``"none"`` keeps every token; ``"two_side"`` keeps ``1−ε_lo ≤ ρ ≤ 1+ε_hi``;
      ``"one_side"`` keeps ``ρ ≤ 1+ε_hi`` when ``A ≥ 0`` and ``ρ ≥ 1−ε_lo`` when ``A ≤ 0``;
      ``"ring"`` is two-side plus ``(A ≥ 0, ρ ≤ 1−ε'_lo)`` and ``(A ≤ 0, ρ ≥ 1+ε'_hi)``;
      ``"one_side_sequence"`` is one-side on the GSPO sequence ratio ``exp(mean_t log ρ)``.
    - ``weight`` (detached): ``"none"`` (1), ``"importance"`` (ρ), ``"sequence_importance"``
      (the sequence ratio), ``"advantage"`` (``exp(A/temp)``, advantage weighting).
    - ``regularizer``: ``"k2"`` adds ``coef·(logp − old_logp)²`` (OPMD / Kimi); ``"forward_kl"``
      adds ``−coef·logp`` (equivalent to AsymRE's baseline lowered by ``coef``).

    Defaults (ε = 0.2, ε'_lo = 0.6, ε'_hi = 2.0) are the authors' (Trinity-RFT ``rec`` loss).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``ratio``, ``clip_fraction`` (fraction of tokens masked out).
    """
    if regularizer not in ("none", "k2", "forward_kl"):
        raise ValueError(f"rec: regularizer={regularizer!r} is not one of 'none', 'k2', 'forward_kl'")
    return _rec(
        logp,
        old_logp,
        advantages,
        mask,
        clip_mode=clip_mode,
        eps_low=eps_low,
        eps_high=eps_high,
        eps_low_prime=eps_low_prime,
        eps_high_prime=eps_high_prime,
        weight=weight,
        temp=temp,
        k2_coef=regularizer_coef if regularizer == "k2" else 0.0,
        forward_kl_coef=regularizer_coef if regularizer == "forward_kl" else 0.0,
    )


@losses.register("opmd")
def opmd_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    tau: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """OPMD as REC reads it (Yao et al. 2025, arXiv:2509.24203; Kimi k1.5's online policy mirror
    descent): REINFORCE plus the k2 regulariser to the pre-update policy,
    ``loss = −A·logp + τ·(logp − old_logp)²``.

    The k2 term has zero gradient at ``logp = old_logp``, so on one on-policy pass OPMD is REINFORCE;
    it pulls back tokens whose log-prob has moved in later iterations (``num_iterations > 1``).
    ``tau = 0.1`` is the REC authors' OPMD example (the ½ of Kimi's form is absorbed into τ).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    """
    return _rec(logp, old_logp, advantages, mask, k2_coef=tau)


@losses.register("asymre")
def asymre_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    delta: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AsymRE (Asymmetric REINFORCE, as REC reads it: Yao et al. 2025, arXiv:2509.24203): REINFORCE
    with the baseline lowered by ``δ`` below the group mean, ``V = mean − δ``, i.e.
    ``loss = −(A + δ)·logp``.

    ``δ > 0`` up-weights positives and softens negatives. It equals REC's forward-KL regulariser
    ``−δ·logp``. Meant for un-normalised advantages ``A = r − mean`` (advantage ``grpo`` with
    ``scale: none``). ``delta = 0.1`` is the authors' default (Trinity-RFT ``asymre`` shift −0.1).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    """
    return _rec(logp, old_logp, advantages, mask, baseline_shift=delta)
