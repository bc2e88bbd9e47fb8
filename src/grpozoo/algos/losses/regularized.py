"""Importance-ratio surrogates with a regulariser or a blend on top: R²VPO (A29, a ratio-variance
constraint instead of clipping), LLDS (B54, PPO-clip plus a likelihood-preserving penalty) and
COPO (A28, a blend of PPO-clip on a local and a global advantage)."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.algos.losses import broadcast_advantages
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.losses.reinforce import keep_real, on_tokens, row_mean, token_log_ratio
from grpozoo.registry import losses

# ------------------------------------------------------------------------------ R²VPO (A29)

R2VPO_DELTA = 0.01
R2VPO_LAMBDA_LR = 10.0


def _r2vpo_lambda(ctx: object) -> float:
    state = getattr(ctx, "state", None) or {}
    return float(state.get("r2vpo", {}).get("lambda", 0.0))


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


@losses.register("r2vpo", after_step=_r2vpo_after_step)
def r2vpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: object = None,
    delta: float = R2VPO_DELTA,
    lambda_lr: float = R2VPO_LAMBDA_LR,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """R²VPO (A29; Ratio-Variance Regularized Policy Optimization for Efficient LLM Fine-tuning).

    No clipping: the trust region is the constraint ``Var(ρ) ≤ δ`` on the importance ratio
    ``ρ = exp(logp − old_logp)``, handled primal-dual:
    ``L = −ρ·A + λ·(Var(ρ) − δ)``, with ``λ`` read from ``ctx.state["r2vpo"]["lambda"]`` (0 when
    absent) and updated after each optimiser step by its registered ``after_step``:
    ``λ ← max(0, λ + η_λ·(Var − δ))`` with ``Var = E[ρ²] − E[ρ]²`` over the step's tokens.

    Per token the penalty is ``λ·((ρ_t − μ)² − δ)`` with ``μ`` the mean ratio over the micro-batch's
    real tokens, so under token-mean aggregation the micro-batch contributes ``λ·(Var_mb − δ)``
    weighted by its share of tokens. The variance inside the loss is therefore the *within
    micro-batch* variance (a micro-batch loss cannot see the whole batch); the dual update uses the
    whole step's. With ``λ = 0`` the gradient is the unclipped importance-sampled PG ``−ρ·A·∇logp``;
    no token's gradient is zeroed outright. Use aggregation ``token_mean``.

    GUESS: ``delta = 0.01`` and ``lambda_lr = 10`` (the abstract gives neither). Not implemented:
    the paper's re-weighting of stale samples (its form is not given).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``ratio`` and ``ratio_sq`` (for the dual update), ``r2vpo_lambda``.
    """
    adv = broadcast_advantages(advantages, logp)
    ratio = keep_real(torch.exp(token_log_ratio(logp, old_logp, mask)), mask)
    loss = -ratio * adv
    lam = _r2vpo_lambda(ctx)
    if lam > 0:
        mean_ratio = ratio.sum() / mask.sum().clamp(min=1)
        loss = loss + lam * ((ratio - mean_ratio).square() - delta)
    detached = ratio.detach()
    diagnostics = {
        "ratio": detached,
        "ratio_sq": keep_real(detached.square(), mask),
        "r2vpo_lambda": keep_real(torch.full_like(detached, lam), mask),
    }
    return keep_real(loss, mask), diagnostics



# ------------------------------------------------------------------------------- LLDS (B54)


@losses.register("llds")
def llds_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: object = None,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    coef: float = 0.1,
    only_positive: bool = False,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """LLDS (B54; On GRPO Collapse in Search-R1: The Lazy Likelihood-Displacement Death Spiral).

    PPO-clip (``ppo_clip`` with ``eps_low``/``eps_high``) plus a likelihood-preserving penalty that
    acts only on completions whose sequence log-likelihood fell, ``ℓ_i = Σ_t logp < ℓ_i^old``, and
    only on the tokens whose log-prob fell:
    ``coef · 1[ℓ_i < ℓ_i^old] · max(0, old_logp − logp)`` per token. Under aggregation
    ``sequence_mean`` this is the entry's ``λ·Σ_t max(0, l^old − l)/L_i`` per completion, averaged
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
    seq_adv = advantages if advantages.dim() == 1 else row_mean(advantages, mask)
    positive = seq_adv > 0
    gate = (seq_delta < 0).detach()
    if only_positive:
        gate = gate & positive
    fell = torch.where(fall > 0, fall, torch.zeros_like(fall))  # max(0, ·), no gradient at a tie
    penalty = coef * gate.unsqueeze(1).to(fall.dtype) * fell
    diagnostics = {name: keep_real(value, mask) for name, value in diagnostics.items()}
    d = seq_delta.detach()
    diagnostics.update(
        lld_delta=on_tokens(d, mask),
        lld_delta_positive=on_tokens(torch.where(positive, d, torch.zeros_like(d)), mask),
        lld_positive_tokens=on_tokens(positive.to(d.dtype), mask),
        llds_active=on_tokens(gate.to(d.dtype), mask),
    )
    return keep_real(base + penalty, mask), diagnostics


# ------------------------------------------------------------------------------- COPO (A28)


@losses.register("copo")
def copo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: object = None,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """COPO's blended loss (A28; COPO: Consistency-Aware Policy Optimization).

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
    extras = getattr(ctx, "extras", None) or {}
    weight = extras.get("copo_weight")
    global_adv = extras.get("copo_global_advantage")
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
    loss = (1.0 - w) * global_loss + w * local_loss
    diagnostics = {
        "copo_weight": on_tokens(weight, mask),
        "clip_fraction_local": keep_real(local_diag["clip_fraction"], mask),
        "clip_fraction_global": keep_real(global_diag["clip_fraction"], mask),
    }
    return keep_real(loss, mask), diagnostics
