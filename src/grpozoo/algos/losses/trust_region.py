"""Trust-region policy losses beyond the PPO clip: a bounded-ratio target (BPO / GBPO), multi-scale
ratio gating (FiberPO), a KL-to-old proximity term (MDPO) and ratio re-centring before the clip
(GRPO-Guard's regulated clipping).

Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]``; every loss returns
``(loss [B, T], diagnostics {name: [B, T]})`` with 0 on padding. Token log-ratios are clamped to
``±LOG_RATIO_CLAMP`` first (:func:`grpozoo.algos.masked.token_log_ratio`).
"""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.losses import Statistics, broadcast_advantages
from grpozoo.algos.losses.clipped import clipped_surrogate
from grpozoo.algos.masked import keep_real, mask_outputs, masked_mean, row_mean, token_log_ratio, token_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts

# --------------------------------------------------------------------------- BPO / GBPO


def _check_epsilons(name: str, eps_low: float, eps_high: float) -> None:
    if not 0.0 < eps_low < 1.0 or eps_high <= 0.0:
        raise ValueError(f"{name}: eps_low must lie in (0, 1) and eps_high be > 0 (got {eps_low}, {eps_high})")


def bounded_ratio_target(
    adv: torch.Tensor,
    eps_low: float,
    eps_high: float,
    target: Literal["sign", "linear"] = "sign",
    lam: float = 1.0,
) -> torch.Tensor:
    """The ratio ``r* = π*/π_old`` of the bounded-ratio optimum (Ao et al. 2026, "Bounded Ratio
    Reinforcement Learning", arXiv:2604.18578), per token, always inside ``[1−eps_low, 1+eps_high]``.

    ``target="sign"``: ``r* = 1 + eps_high`` where ``A > 0``, ``1 − eps_low`` where ``A < 0``, 1 where
    ``A = 0`` (the closed form the authors give for the constrained problem, with ``A`` in place of
    their median advantage). ``target="linear"``: ``r* = clip(1 + A/lam, 1−eps_low, 1+eps_high)``, a
    regularised optimum that reaches the bound only for ``|A| ≥ lam·eps`` (GUESS).
    Shapes: ``adv [B, 1]`` or ``[B, T]`` -> same.
    """
    if target == "sign":
        return torch.where(adv > 0, 1.0 + eps_high, torch.where(adv < 0, 1.0 - eps_low, 1.0)).to(adv.dtype)
    if target == "linear":
        if lam <= 0:
            raise ValueError(f"bounded ratio target: lam must be > 0 (got {lam})")
        return (1.0 + adv / lam).clamp(1.0 - eps_low, 1.0 + eps_high)
    raise ValueError(f"bounded ratio target: target={target!r} is not one of 'sign', 'linear'")


@losses.register("bpo")
def bpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    target: Literal["sign", "linear"] = "sign",
    lam: float = 1.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """BPO / GBPO (Ao et al. 2026, "Bounded Ratio Reinforcement Learning", arXiv:2604.18578): fit the
    policy to the analytic optimum of the ratio-bounded policy-improvement problem instead of
    clipping a surrogate.

    The optimum has a bounded ratio ``r* = π*/π_old ∈ [1−eps_low, 1+eps_high]``
    (:func:`bounded_ratio_target`); the loss is an advantage-weighted divergence between the policy's
    ratio ``ρ = exp(logp − old_logp)`` and it: ``loss = |A|·(ρ − r*)² / (2·ε)``, with ``ε = eps_high``
    where ``A ≥ 0`` and ``eps_low`` where ``A < 0``. Its gradient ``|A|·(ρ − r*)·ρ/ε·∇logp`` is 0 at
    ``ρ = r*``; for ``A > 0`` it pushes ``ρ`` up only while ``ρ < 1+eps_high`` and back down beyond
    (no incentive past the bound, as in PPO's flat region). With the ``"sign"`` target the division
    by ``2ε`` makes the on-policy gradient (``ρ = 1``) the policy gradient ``−A·∇logp``, as PPO's.
    GBPO is this loss on group-relative advantages (the ``gbpo`` recipe); the paper's BPO uses a
    learned critic, which this library does not have (the ``bpo`` recipe uses the group-mean
    baseline without the std).
    GUESS: the squared divergence ``|A|·(ρ − r*)²`` and its ``1/(2ε)`` scale (the abstract names
    an "advantage-weighted divergence" without its form), the sign of ``A`` in place of the
    paper's median advantage, and ``target="sign"`` as the default (``"linear"``: see
    :func:`bounded_ratio_target`, with ``lam``).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``clip_fraction`` (tokens past the bound in the direction of ``A``), ``target_ratio``.
    """
    _check_epsilons("bpo", eps_low, eps_high)
    adv = broadcast_advantages(advantages, logp)
    ratio = token_ratio(logp, old_logp, mask)
    goal = bounded_ratio_target(adv, eps_low, eps_high, target, lam)
    eps = torch.where(adv >= 0, eps_high, eps_low).to(ratio.dtype)
    loss = adv.abs() * (ratio - goal).square() / (2.0 * eps)
    with torch.no_grad():
        past = ((adv > 0) & (ratio > 1.0 + eps_high)) | ((adv < 0) & (ratio < 1.0 - eps_low))
    return mask_outputs(loss, {"clip_fraction": past.float(), "target_ratio": goal}, mask)


# --------------------------------------------------------------------------- FiberPO


@losses.register("fiberpo")
def fiberpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    delta_traj: float = 0.05,
    delta_tok: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """FiberPO's trajectory/token gating (Li et al. 2026, "Fibration Policy Optimization",
    arXiv:2603.08239): the ratio gate is split into a gate on the trajectory aggregate (the base) and
    a gate on each token's residual (the fiber), each with its own budget.

    ``ℓ_t = logp − old_logp``; base ``ℓ̄ = mean_t ℓ_t`` over the sequence's real tokens; fiber
    ``ℓ_t − ℓ̄``. The effective ratio is ``r_t = exp(clip(ℓ̄, ±delta_traj) + clip(ℓ_t − ℓ̄, ±delta_tok))``
    and ``loss = −r_t·A``. Inside both budgets ``r_t = ρ_t`` and the Jacobian of ``log r`` with respect
    to the token log-probs is the identity (block-diagonal over trajectories), so on-policy the
    gradient is the vanilla policy gradient ``−A_t·∇logp_t``. A sequence whose tokens all moved
    alike has a zero fiber: a pure sequence-level gate. A level past its budget passes no gradient
    through it, in either direction (the update is censored, not pushed back).
    Not implemented: the deeper hierarchy (domain → prompt group → trajectory → token,
    FiberPO-Domain); only the trajectory and token levels.
    GUESS: the hard clip as the gate, and ``delta_traj = 0.05``, ``delta_tok = 0.2`` (the abstract
    gives neither form nor budgets).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``clip_fraction_traj`` (``|ℓ̄| > delta_traj``), ``clip_fraction_tok``
    (``|ℓ_t − ℓ̄| > delta_tok``), ``clip_fraction`` (either), ``base_log_ratio``, ``fiber_log_ratio``.
    """
    if delta_traj < 0 or delta_tok < 0:
        raise ValueError(f"fiberpo: budgets must be ≥ 0 (got delta_traj={delta_traj}, delta_tok={delta_tok})")
    log_ratio = token_log_ratio(logp, old_logp, mask)
    base = row_mean(log_ratio, mask).unsqueeze(1)
    fiber = keep_real(log_ratio - base, mask)
    gated = base.clamp(-delta_traj, delta_traj) + fiber.clamp(-delta_tok, delta_tok)
    loss = -torch.exp(gated) * broadcast_advantages(advantages, logp)
    with torch.no_grad():
        traj = (base.abs() > delta_traj).expand_as(fiber)
        tok = fiber.abs() > delta_tok
        diagnostics = {
            "clip_fraction_traj": traj.float(),
            "clip_fraction_tok": tok.float(),
            "clip_fraction": (traj | tok).float(),
            "base_log_ratio": base,
            "fiber_log_ratio": fiber,
        }
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- MDPO


def mdpo_kl_coefficient(step: int, total_steps: int, step_size: float, anneal: bool, min_fraction: float) -> float:
    """MDPO's proximity weight ``1/t_k`` with ``t_k = step_size·max(1 − k/K, min_fraction)``,
    ``k = step − 1`` (steps are 1-based) and ``K = total_steps``; ``t_k = step_size`` without
    ``anneal``. The weight grows from ``1/step_size`` as training goes on (Tomar et al. 2020)."""
    if step_size <= 0 or not 0.0 < min_fraction <= 1.0:
        raise ValueError(f"mdpo: step_size must be > 0 and min_fraction in (0, 1] (got {step_size}, {min_fraction})")
    fraction = max(1.0 - (step - 1) / max(total_steps, 1), min_fraction) if anneal else 1.0
    return 1.0 / (step_size * fraction)


@losses.register("mdpo")
def mdpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    step_size: float = 1.0,
    anneal: bool = True,
    min_fraction: float = 0.1,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MDPO, on-policy (Tomar et al. 2020, "Mirror Descent Policy Optimization", arXiv:2005.09814):
    no clipping; a KL proximity term to the policy that sampled, minimised over several optimiser
    steps on the batch.

    ``loss = −ρ·A + (1/t_k)·f(ρ)`` with ``ρ = exp(logp − old_logp)`` and ``f(ρ) = ρ·log ρ − ρ + 1``,
    the per-token estimate of ``KL(π_θ ‖ π_old)`` from tokens sampled by ``π_old`` (unbiased, since
    ``E_old[ρ log ρ] = KL(π_θ‖π_old)`` and ``E_old[ρ − 1] = 0``; ``f ≥ 0``, with ``f(1) = 0`` and
    ``f'(1) = 0``), so at ``θ = θ_old`` the term and its gradient vanish and the gradient is the
    policy gradient. ``t_k`` anneals as ``1 − k/K`` over the run (:func:`mdpo_kl_coefficient`, from
    ``ctx.step`` and ``ctx.total_steps``), floored at ``min_fraction`` so the weight stays finite.
    The term acts from the second optimiser iteration on a batch: use ``num_iterations > 1``.
    GUESS: the ``ρ log ρ − ρ + 1`` estimator (the paper's continuous-control policies compute the
    KL in closed form) and ``min_fraction = 0.1``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``mdpo_kl`` (``f(ρ)``), ``mdpo_kl_coef`` (``1/t_k``).
    """
    coef = mdpo_kl_coefficient(ctx.step, ctx.total_steps, step_size, anneal, min_fraction)
    log_ratio = token_log_ratio(logp, old_logp, mask)
    ratio = torch.exp(log_ratio)
    kl = ratio * log_ratio - ratio + 1.0
    loss = -ratio * broadcast_advantages(advantages, logp) + coef * kl
    return mask_outputs(loss, {"mdpo_kl": kl, "mdpo_kl_coef": torch.full_like(kl, coef)}, mask)


# --------------------------------------------------------------------------- GRPO-Guard


def _grpo_guard_statistics(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    *,
    bucket_size: int | None,
    **_other_params: object,
) -> Statistics:
    """GRPO-Guard's centre ``log_ratio_centre``: the mean log-ratio over the whole batch's real tokens
    (a scalar), or with ``bucket_size`` the mean over the batch's real tokens at positions
    ``[j·bucket_size, (j+1)·bucket_size)``, put on every token of the bucket ``[B, T]``."""
    log_ratio = token_log_ratio(logp, old_logp, mask).detach()
    if bucket_size is None:
        return {"log_ratio_centre": masked_mean(log_ratio, mask)}
    if bucket_size < 1:
        raise ValueError(f"grpo_guard: bucket_size must be ≥ 1 or None (got {bucket_size})")
    real = (mask > 0).to(log_ratio.dtype)
    bucket = torch.arange(mask.shape[1], device=mask.device) // bucket_size
    n_buckets = int(bucket.max()) + 1 if bucket.numel() else 0
    sums = log_ratio.new_zeros(n_buckets).index_add(0, bucket, (log_ratio * real).sum(dim=0))
    counts = log_ratio.new_zeros(n_buckets).index_add(0, bucket, real.sum(dim=0))
    centre = (sums / counts.clamp(min=1.0))[bucket]
    return {"log_ratio_centre": keep_real(centre.expand_as(log_ratio), mask)}


@losses.register("grpo_guard", policy_statistics=_grpo_guard_statistics)
def grpo_guard_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    bucket_size: int | None = None,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GRPO-Guard's ratio normalisation, text analogue (Wang et al. 2025, "GRPO-Guard: Mitigating
    Implicit Over-Optimization in Flow Matching via Regulated Clipping", arXiv:2510.22319): re-centre
    the log-ratio before the PPO clip, so a drifted ratio distribution (mean below 1) cannot keep
    positive-advantage tokens out of the upper clip.

    ``ℓ̃ = (logp − old_logp) − c`` with ``c`` the mean log-ratio over the real tokens of the whole
    step's batch (or, with ``bucket_size``, of its position bucket), taken once per optimiser
    iteration by the trainer (``statistics``; called without them, over the batch given) and held
    constant in the gradient; then the PPO clipped surrogate on ``exp(ℓ̃)`` with
    ``eps_low``/``eps_high``. After re-centring the masked mean of ``ℓ̃`` is 0. On the first pass
    over a batch the log-ratios are 0, so this is ``ppo_clip``.
    The paper normalises per denoising timestep of a flow model and also reweights gradients
    evenly across noise levels; neither has a text counterpart here. GUESS: the centre is the
    batch mean (``bucket_size=None``); position buckets stand in for timesteps.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the PPO clip fractions, ``centred_log_ratio``, ``log_ratio_centre``.
    """
    if statistics is None:
        statistics = _grpo_guard_statistics(logp.detach(), old_logp, advantages, mask, ctx, bucket_size=bucket_size)
    centre = statistics["log_ratio_centre"].to(logp.dtype)
    centred = keep_real(token_log_ratio(logp, old_logp, mask) - centre, mask)
    loss, diagnostics = clipped_surrogate(
        torch.exp(centred), broadcast_advantages(advantages, logp), eps_low, eps_high
    )
    diagnostics.update(centred_log_ratio=centred, log_ratio_centre=centre)
    return mask_outputs(loss, diagnostics, mask)
