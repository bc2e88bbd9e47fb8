"""Importance-ratio surrogates with a regulariser or a blend on top: R²VPO (a ratio-variance
constraint instead of clipping), LLDS (PPO-clip plus a likelihood-preserving penalty) and COPO (a
blend of PPO-clip on a local and a global advantage)."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.algos.losses import Statistics, broadcast_advantages, sequence_advantages
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.masked import keep_real, mask_outputs, masked_mean, on_tokens, token_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts

# ------------------------------------------------------------------------------ R²VPO

R2VPO_DELTA = 0.01
R2VPO_LAMBDA_LR = 10.0


def _r2vpo_lambda(ctx: Rollouts) -> float:
    return float(ctx.state.get("r2vpo", {}).get("lambda", 0.0))


def _r2vpo_statistics(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    **_other_params: object,
) -> Statistics:
    """R²VPO's ``mean_ratio``: the mean token ratio over the whole batch's real tokens (a scalar)."""
    return {"mean_ratio": masked_mean(token_ratio(logp, old_logp, mask), mask)}


def _r2vpo_after_step(
    state: dict[str, Any],
    metrics: dict[str, float],
    delta: float = R2VPO_DELTA,
    lambda_lr: float = R2VPO_LAMBDA_LR,
    **_other_params: Any,
) -> None:
    """Dual ascent on λ after an optimiser step: ``λ ← max(0, λ + η_λ·(Var(ρ) − δ))`` with
    ``Var = metrics["ratio_sq"] − metrics["ratio"]²`` (the step's token averages)."""
    if "ratio" not in metrics or "ratio_sq" not in metrics:
        return
    variance = float(metrics["ratio_sq"]) - float(metrics["ratio"]) ** 2
    own = state.setdefault("r2vpo", {})
    own["lambda"] = max(0.0, float(own.get("lambda", 0.0)) + lambda_lr * (variance - delta))
    own["ratio_variance"] = variance


@losses.register("r2vpo", after_step=_r2vpo_after_step, policy_statistics=_r2vpo_statistics)
def r2vpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    delta: float = R2VPO_DELTA,
    lambda_lr: float = R2VPO_LAMBDA_LR,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """R²VPO (Luo et al. 2026, "Ratio-Variance Regularized Policy Optimization for Efficient LLM
    Fine-tuning", arXiv:2601.03320).

    No clipping: the trust region is the constraint ``Var(ρ) ≤ δ`` on the importance ratio
    ``ρ = exp(logp − old_logp)``, handled primal-dual:
    ``L = −ρ·A + λ·(Var(ρ) − δ)``, with ``λ`` read from ``ctx.state["r2vpo"]["lambda"]`` (0 when
    absent) and updated after each optimiser step by its registered ``after_step``:
    ``λ ← max(0, λ + η_λ·(Var − δ))`` with ``Var = E[ρ²] − E[ρ]²`` over the step's tokens.

    Per token the penalty is ``λ·((ρ_t − μ)² − δ)`` with ``μ`` the mean ratio over the real tokens of
    the whole step's batch (from the trainer, ``statistics``, at each optimiser iteration; called
    without it, the loss takes it over the batch it is given), so under token-mean aggregation the
    batch contributes ``λ·(Var − δ)``. ``μ`` is a constant to the gradient, which is still exact:
    ``∇Σ_t (ρ_t − μ)² = Σ_t 2(ρ_t − μ)·∇ρ_t`` because ``Σ_t (ρ_t − μ) = 0``. With ``λ = 0`` the
    gradient is the unclipped importance-sampled PG ``−ρ·A·∇logp``; no token's gradient is zeroed
    outright. Use aggregation ``token_mean``.

    GUESS: ``delta = 0.01`` and ``lambda_lr = 10`` (the abstract gives neither). Not implemented:
    the paper's re-weighting of stale samples (its form is not given).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``ratio`` and ``ratio_sq`` (for the dual update), ``r2vpo_lambda``.
    """
    ratio = keep_real(token_ratio(logp, old_logp, mask), mask)
    loss = -ratio * broadcast_advantages(advantages, logp)
    lam = _r2vpo_lambda(ctx)
    if lam > 0:
        if statistics is None:
            statistics = _r2vpo_statistics(logp.detach(), old_logp, advantages, mask, ctx)
        loss = loss + lam * ((ratio - statistics["mean_ratio"]).square() - delta)
    diagnostics = {"ratio": ratio, "ratio_sq": ratio.square(), "r2vpo_lambda": torch.full_like(ratio, lam)}
    return mask_outputs(loss, diagnostics, mask)


# ------------------------------------------------------------------------------- LLDS


@losses.register("llds")
def llds_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    coef: float = 0.1,
    only_positive: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """LLDS (Deng et al. 2025, "On GRPO Collapse in Search-R1: The Lazy Likelihood-Displacement Death
    Spiral", arXiv:2512.04220).

    PPO-clip (``ppo_clip`` with ``eps_low``/``eps_high``) plus a likelihood-preserving penalty that
    acts only on completions whose sequence log-likelihood fell, ``ℓ_i = Σ_t logp < ℓ_i^old``, and
    only on the tokens whose log-prob fell:
    ``coef · 1[ℓ_i < ℓ_i^old] · max(0, old_logp − logp)`` per token. Under aggregation
    ``sequence_mean`` this is the paper's regulariser ``λ·Σ_t max(0, l^old − l)/L_i`` per completion, averaged
    over completions. The penalty is ≥ 0, is 0 with zero gradient when no likelihood fell, and
    never sends gradient to a token whose log-prob rose. It needs ``old_logp`` to differ from
    ``logp``: it acts from the second pass on a batch (``num_iterations > 1``).

    GUESS (scoping): ``only_positive`` restricts the penalty to completions with ``A > 0`` (the
    sequence advantage, or the row mean of token advantages); default off (all completions).
    ``coef = 0.1`` is a GUESS. Tool-observation tokens must already be masked out by ``mask``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics (the LLD monitor): ``lld_delta`` = ``ℓ_i − ℓ_i^old`` on every token of completion i;
    ``lld_delta_positive`` the same on completions with ``A > 0`` (0 elsewhere) and
    ``lld_positive_tokens`` their indicator, so the mean Δ of correct completions is
    ``lld_delta_positive / lld_positive_tokens``; ``llds_active`` where the penalty applies.
    """
    base, diagnostics = ppo_clip_loss(
        logp, old_logp, advantages, mask, ctx, eps_low=eps_low, eps_high=eps_high
    )
    fall = keep_real(old_logp - logp, mask)  # > 0 where the token's log-prob fell
    seq_delta = -fall.sum(dim=1)  # ℓ_i − ℓ_i^old
    positive = sequence_advantages(advantages, mask) > 0
    gate = (seq_delta < 0).detach()
    if only_positive:
        gate = gate & positive
    fell = torch.where(fall > 0, fall, torch.zeros_like(fall))  # max(0, ·), no gradient at a tie
    penalty = coef * gate.unsqueeze(1).to(fall.dtype) * fell
    d = seq_delta.detach()
    diagnostics.update(
        lld_delta=on_tokens(d, mask),
        lld_delta_positive=on_tokens(torch.where(positive, d, torch.zeros_like(d)), mask),
        lld_positive_tokens=on_tokens(positive.to(d.dtype), mask),
        llds_active=on_tokens(gate.to(d.dtype), mask),
    )
    return mask_outputs(base + penalty, diagnostics, mask)


# ------------------------------------------------------------------------------- COPO


@losses.register("copo")
def copo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """COPO's blended loss (Han et al. 2025, "COPO: Consistency-Aware Policy Optimization",
    arXiv:2508.04138).

    ``L = (1 − w)·L_clip(A_global) + w·L_clip(A_local)`` per token, where ``L_clip`` is ``ppo_clip``
    (``eps_low``/``eps_high``), ``A_local = advantages`` and, per row, ``A_global`` and ``w`` come
    from the ``copo`` advantage estimator through ``ctx.extras["copo_global_advantage"]`` and
    ``ctx.extras["copo_weight"]``. A consistent group (low answer entropy, ``w ≈ 0``) learns from
    the global loss, a diverse one (``w ≈ 1``) from the local one.

    Without those extras (another estimator was configured) it raises: the loss needs
    ``algorithm.advantage.name: copo``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``copo_weight``, ``clip_fraction_local``, ``clip_fraction_global``.
    """
    weight = ctx.extras.get("copo_weight")
    global_adv = ctx.extras.get("copo_global_advantage")
    if weight is None or global_adv is None:
        raise ValueError(
            "the copo loss needs the copo advantage estimator (set algorithm.advantage.name=copo), "
            "which hands it the global advantage and the blend weight"
        )
    weight = weight.to(device=logp.device, dtype=logp.dtype)
    global_adv = global_adv.to(device=logp.device, dtype=logp.dtype)
    local_loss, local_diag = ppo_clip_loss(
        logp, old_logp, advantages, mask, ctx, eps_low=eps_low, eps_high=eps_high
    )
    global_loss, global_diag = ppo_clip_loss(
        logp, old_logp, global_adv, mask, ctx, eps_low=eps_low, eps_high=eps_high
    )
    w = weight.unsqueeze(1)
    diagnostics = {
        "copo_weight": w,
        "clip_fraction_local": local_diag["clip_fraction"],
        "clip_fraction_global": global_diag["clip_fraction"],
    }
    return mask_outputs((1.0 - w) * global_loss + w * local_loss, diagnostics, mask)
