"""Token-ratio policy losses: the PPO clipped surrogate and its published variants (dual clip, ratio
cap, elastic and entropy-adaptive clip ranges, truncated importance weights, soft gates,
covariance-based gradient control, probability-shift trust regions).

Every loss here works on the token ratio ``ρ = exp(logp − old_logp)`` (the log-ratio clamped to
``±LOG_RATIO_CLAMP`` before ``exp``, :func:`grpozoo.algos.masked.token_log_ratio`). Shapes:
``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]``; every loss returns
``(loss [B, T], diagnostics {name: [B, T]})`` with 0 on padding.
Sequence-, segment- and prefix-ratio losses live in :mod:`grpozoo.algos.losses.sequence`.
"""

from __future__ import annotations

import torch

from grpozoo.algos.entropy import hapo_normalized_entropy
from grpozoo.algos.groups import group_std
from grpozoo.algos.losses import Statistics, broadcast_advantages, require_field, sequence_advantages
from grpozoo.algos.masked import keep_real, mask_outputs, masked_mean, token_log_ratio, token_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts

Bound = float | torch.Tensor  # a clip epsilon: a number or a tensor broadcastable to [B, T]


# --------------------------------------------------------------------------- shared pieces


def _bound(value: Bound, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=like.dtype, device=like.device)


def clipped_surrogate(
    ratio: torch.Tensor,
    adv: torch.Tensor,
    eps_low: Bound,
    eps_high: Bound,
    dual_clip: float | None = None,
    ratio_cap: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate every loss of this family shares (no masking; callers mask).

    ``loss = −min(ρ̄·A, clip(ρ, 1−eps_low, 1+eps_high)·A)`` with ``ρ̄ = min(ρ, ratio_cap)`` (``ρ̄ = ρ``
    when ``ratio_cap`` is None); with ``dual_clip = c`` the loss of a token with ``A < 0`` is further
    capped at ``−c·A``: ``loss = min(loss, −c·A)`` (Ye et al. 2020). ``eps_low`` / ``eps_high`` are
    numbers or tensors broadcastable to ``ratio``. ``ratio [B, T]``, ``adv [B, 1]`` or ``[B, T]``.

    Diagnostics (0/1 per token): ``clip_fraction_low`` (``ρ < 1−eps_low``, ``A < 0``),
    ``clip_fraction_high`` (``ρ > 1+eps_high``, ``A > 0``), ``dual_clip_fraction`` (``ρ > c``, ``A < 0``),
    ``ratio_cap_fraction`` (``ρ > ratio_cap``, ``A ≠ 0``), and ``clip_fraction``, their union: the
    tokens whose gradient the clipping zeroes.
    """
    low = 1.0 - _bound(eps_low, ratio)
    high = 1.0 + _bound(eps_high, ratio)
    clipped = torch.clamp(ratio, min=low, max=high)
    unclipped = ratio if ratio_cap is None else ratio.clamp(max=ratio_cap)
    surrogate = torch.minimum(unclipped * adv, clipped * adv)
    if dual_clip is not None:
        surrogate = torch.where(adv < 0, torch.maximum(surrogate, dual_clip * adv), surrogate)
    with torch.no_grad():
        clipped_low = (ratio < low) & (adv < 0)
        clipped_high = (ratio > high) & (adv > 0)
        any_clip = clipped_low | clipped_high
        diagnostics = {"clip_fraction_low": clipped_low, "clip_fraction_high": clipped_high}
        if dual_clip is not None:
            dual = (ratio > dual_clip) & (adv < 0)
            diagnostics["dual_clip_fraction"] = dual
            any_clip = any_clip | dual
        if ratio_cap is not None:
            capped = (ratio > ratio_cap) & (adv != 0)
            diagnostics["ratio_cap_fraction"] = capped
            any_clip = any_clip | capped
        diagnostics["clip_fraction"] = any_clip
    return -surrogate, {k: v.float() for k, v in diagnostics.items()}


def _check_above_one(name: str, value: float | None) -> None:
    if value is not None and value <= 1.0:
        raise ValueError(f"{name} must be greater than 1 (got {value})")


# --------------------------------------------------------------------------- PPO clip


@losses.register("ppo_clip")
def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: Bound = 0.2,
    eps_high: Bound = 0.2,
    dual_clip: float | None = None,
    ratio_cap: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate (Schulman et al. 2017, "Proximal Policy Optimization Algorithms",
    arXiv:1707.06347) with separate low/high epsilons (DAPO's clip-higher, Yu et al. 2025,
    arXiv:2503.14476), optionally with dual clip and a ratio cap; GRPO's loss.

    ``loss = −min(ρ̄·A, clip(ρ, 1−eps_low, 1+eps_high)·A)`` with ``ρ = exp(logp − old_logp)``.

    - ``dual_clip = c`` (dual-clip PPO, Ye et al. 2020; ``c = 3`` typical, must be > 1): for ``A < 0``
      the loss is capped at ``−c·A``, so a token whose ratio exploded (``ρ > c``) stops pushing.
    - ``ratio_cap = δ`` (INTELLECT-2's two-sided clipping; TRL's ``delta``; must be > 1, normally
      > 1+eps_high): ``ρ̄ = min(ρ, δ)`` replaces ``ρ`` in the *unclipped* term, for every token, before
      the ``min``. For ``A < 0`` this caps the loss at ``−δ·A`` (dual clip at ``c = δ``); for ``A > 0``
      with ``δ > 1+eps_high`` it changes nothing.

    ``eps_low`` / ``eps_high`` may be tensors broadcastable to ``[B, T]`` (per-sample or per-token ranges).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    """
    _check_above_one("ppo_clip dual_clip", dual_clip)
    _check_above_one("ppo_clip ratio_cap", ratio_cap)
    loss, diagnostics = clipped_surrogate(
        token_ratio(logp, old_logp, mask),
        broadcast_advantages(advantages, logp),
        eps_low,
        eps_high,
        dual_clip,
        ratio_cap,
    )
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- truncated IS weights


def _weighted_logp_loss(weight: torch.Tensor, adv: torch.Tensor, logp: torch.Tensor) -> torch.Tensor:
    """``−sg(weight)·A·logp``: REINFORCE with a detached importance weight; the gradient is ``−w·A``."""
    return -weight.detach() * adv * logp


@losses.register("cispo")
def cispo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 1.0,
    eps_high: float = 4.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """CISPO (MiniMax 2025, "MiniMax-M1", arXiv:2506.13585): clip the importance-sampling *weight*,
    not the token update.

    ``loss = −sg(clip(ρ, 1−eps_low, 1+eps_high))·A·logp``. The gradient ``−clip(ρ)·A·∇logp`` is never
    zeroed: a token outside the range is down- or up-weighted, never dropped (the weight is > 0
    for any finite log-ratio). MiniMax-M1 sets no lower bound (``eps_low = 1``: the range starts at 0)
    and tunes only the upper one. GUESS: ``eps_high = 4`` (a largest weight of 5).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``clip_fraction`` (ρ outside the range), ``is_weight`` (the clipped weight).
    """
    ratio = token_ratio(logp, old_logp, mask)
    low, high = 1.0 - eps_low, 1.0 + eps_high
    weight = ratio.clamp(low, high)
    loss = _weighted_logp_loss(weight, broadcast_advantages(advantages, logp), logp)
    diagnostics = {"clip_fraction": ((ratio < low) | (ratio > high)).float(), "is_weight": weight}
    return mask_outputs(loss, diagnostics, mask)


@losses.register("dppo")
def dppo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    delta: float = 0.2,
    ratio_cap: float = 20.0,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DPPO-Binary-TV (Qi et al. 2026, "Rethinking the Trust Region in LLM Reinforcement Learning",
    arXiv:2602.04879): a trust region on the sampled token's *probability* shift instead of its ratio.

    ``p = exp(logp)``, ``p_old = exp(old_logp)``. A token is outside the trust region when its
    probability already moved more than ``delta`` in the direction its advantage pushes
    (``A > 0``: ``p − p_old > delta``; ``A < 0``: ``p_old − p > delta``); those tokens get loss and
    gradient 0. The others: ``loss = −sg(min(ρ, ratio_cap))·A·logp`` (a truncated, detached
    importance weight, as in the authors' public code). Unlike ratio clipping, a rare token may
    change its probability many-fold while a common one is held to ±delta.
    GUESS: ``delta = 0.2`` (the paper's threshold was not recorded here); the binary-KL variant is
    not implemented. Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``clip_fraction`` (tokens outside the trust region, ``A ≠ 0``), ``prob_shift`` (``|p − p_old|``).
    """
    adv = broadcast_advantages(advantages, logp)
    ratio = token_ratio(logp, old_logp, mask)
    with torch.no_grad():  # log-probs are ≤ 0; the clamp only guards exp on arbitrary inputs
        shift = torch.exp(logp.clamp(max=0.0)) - torch.exp(old_logp.clamp(max=0.0))
        inside = torch.where(adv > 0, shift <= delta, shift >= -delta)
    loss = _weighted_logp_loss(ratio.clamp(max=ratio_cap), adv, logp) * inside
    diagnostics = {"clip_fraction": (~inside & (adv != 0)).float(), "prob_shift": shift.abs()}
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- soft gate


@losses.register("sapo")
def sapo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    tau_pos: float = 1.0,
    tau_neg: float = 1.05,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SAPO (Gao et al. 2025, "Soft Adaptive Policy Optimization", Qwen, arXiv:2511.20347): a smooth
    sigmoid gate instead of the hard clip.

    ``loss = −f(ρ)·A`` with ``f(ρ) = σ(τ·(ρ − 1))·4/τ``, ``τ = tau_pos`` where ``A > 0`` and ``tau_neg``
    otherwise (a larger τ for negative tokens damps them faster). The gradient is
    ``−4·σ(1−σ)·ρ·A·∇logp``: at ``ρ = 1`` it equals the unclipped surrogate's ``−A·∇logp``, and it
    decays smoothly (never exactly to 0) as ``ρ`` leaves 1. The value at ``ρ = 1`` is ``−2A/τ``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``gate_weight`` (``4·σ(1−σ)``, the gradient's scale relative to the unclipped ``ρ·A``).
    """
    adv = broadcast_advantages(advantages, logp)
    ratio = token_ratio(logp, old_logp, mask)
    tau = torch.where(adv > 0, _bound(tau_pos, ratio), _bound(tau_neg, ratio))
    gate = torch.sigmoid(tau * (ratio - 1.0))
    loss = -gate * (4.0 / tau) * adv
    return mask_outputs(loss, {"gate_weight": 4.0 * gate * (1.0 - gate)}, mask)


# --------------------------------------------------------------------------- covariance control
# Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning Language Models",
# arXiv:2505.22617. Both losses pick tokens by their covariance over the whole step's batch.


def centred_covariance(logp: torch.Tensor, adv: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``(logp − mean logp)·(A − mean A)`` per token, both means over the real tokens given;
    detached, 0 on padding. ``logp, mask [B, T]``, ``adv [B, 1]`` or ``[B, T]`` -> ``[B, T]``."""
    lp = logp.detach()
    a = adv.detach().expand_as(lp)
    return keep_real((lp - masked_mean(lp, mask)) * (a - masked_mean(a, mask)), mask)


def _clip_cov_statistics(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    *,
    eps_low: float,
    eps_high: float,
    clip_ratio: float,
    cov_low: float,
    cov_high: float,
    seed: int,
    **_other_params: object,
) -> Statistics:
    """Clip-Cov's pick over the whole batch: ``covariance [B, T]`` and ``cov_detached [B, T]`` (bool),
    ``max(1, ⌊clip_ratio·N⌋)`` tokens (N real tokens) drawn uniformly at random, by a generator seeded
    from ``seed`` and ``ctx.step``, among the real tokens not clipped by PPO with
    ``cov_low < cov < cov_high``."""
    adv = broadcast_advantages(advantages, logp)
    _, clip = clipped_surrogate(token_ratio(logp, old_logp, mask), adv, eps_low, eps_high)
    cov = centred_covariance(logp, adv, mask)
    valid = mask > 0
    candidates = (valid & (clip["clip_fraction"] == 0) & (cov > cov_low) & (cov < cov_high)).flatten()
    index = candidates.nonzero().squeeze(1)
    n_pick = min(max(int(clip_ratio * int(valid.sum())), 1), index.numel())
    generator = torch.Generator().manual_seed(int(seed) * 1_000_003 + ctx.step)
    picked = index[torch.randperm(index.numel(), generator=generator)[:n_pick].to(index.device)]
    detach = torch.zeros_like(candidates)
    detach[picked] = True
    return {"covariance": cov, "cov_detached": detach.view_as(mask)}


@losses.register("clip_cov", policy_statistics=_clip_cov_statistics)
def clip_cov_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    clip_ratio: float = 2e-4,
    cov_low: float = 1.0,
    cov_high: float = 5.0,
    seed: int = 0,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clip-Cov (Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning
    Language Models", arXiv:2505.22617): the PPO clip loss, plus: detach the gradient of a few
    tokens whose log-prob/advantage covariance is high, the tokens that drive entropy collapse.

    ``cov_t = (logp_t − mean logp)·(A_t − mean A)``, the means over the real tokens of the whole
    step's batch. Among the batch's real tokens not already clipped by PPO with
    ``cov_low < cov < cov_high``, ``max(1, ⌊clip_ratio·N⌋)`` (N: the batch's real tokens) are drawn
    uniformly at random, once per optimiser iteration (a ``torch.Generator`` seeded from ``seed`` and
    ``ctx.step``), and keep their loss value but lose their gradient (the authors' code zeroes the
    value as well). The statistics come from the trainer (``statistics``); called without them, the
    loss takes them over the batch it is given.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the PPO clip fractions, ``cov_detached_fraction``, ``covariance``.
    """
    if statistics is None:
        statistics = _clip_cov_statistics(
            logp.detach(),
            old_logp,
            advantages,
            mask,
            ctx,
            eps_low=eps_low,
            eps_high=eps_high,
            clip_ratio=clip_ratio,
            cov_low=cov_low,
            cov_high=cov_high,
            seed=seed,
        )
    adv = broadcast_advantages(advantages, logp)
    loss, diagnostics = clipped_surrogate(token_ratio(logp, old_logp, mask), adv, eps_low, eps_high)
    detach = statistics["cov_detached"]
    loss = torch.where(detach, loss.detach(), loss)
    diagnostics.update(cov_detached_fraction=detach, covariance=statistics["covariance"])
    return mask_outputs(loss, diagnostics, mask)


def _kl_cov_statistics(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    *,
    kl_ratio: float,
    **_other_params: object,
) -> Statistics:
    """KL-Cov's pick over the whole batch: ``covariance [B, T]`` and ``kl_penalised [B, T]`` (bool),
    the ``max(1, ⌊kl_ratio·N⌋)`` real tokens (N of them) with the largest covariance."""
    cov = centred_covariance(logp, broadcast_advantages(advantages, logp), mask)
    valid = (mask > 0).flatten()
    n_valid = int(valid.sum())
    penalised = torch.zeros_like(valid)
    if n_valid:
        k = max(int(kl_ratio * n_valid), 1)
        scores = cov.flatten().masked_fill(~valid, float("-inf"))
        penalised[torch.topk(scores, k).indices] = True
    return {"covariance": cov, "kl_penalised": penalised.view_as(mask)}


@losses.register("kl_cov", policy_statistics=_kl_cov_statistics)
def kl_cov_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    kl_ratio: float = 2e-3,
    kl_coef: float = 1.0,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """KL-Cov (Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning Language
    Models", arXiv:2505.22617): the *unclipped* surrogate ``−ρ·A``, plus ``kl_coef·|logp − old_logp|``
    on the ``max(1, ⌊kl_ratio·N⌋)`` real tokens of the whole step's batch (N of them) with the largest
    covariance ``(logp − mean logp)·(A − mean A)`` (means over the batch's real tokens), picked once
    per optimiser iteration. Defaults: the paper's ``k = 2e-3`` (its smaller model; 2e-4 for the
    larger) and ``β = 1``. The penalty is 0 with a zero gradient while ``logp = old_logp``, so it acts
    from the second update on a batch (``num_iterations > 1``). The statistics come from the trainer
    (``statistics``); called without them, the loss takes them over the batch it is given.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``kl_cov_fraction`` (penalised tokens), ``abs_log_ratio``, ``covariance``.
    """
    if statistics is None:
        statistics = _kl_cov_statistics(logp.detach(), old_logp, advantages, mask, ctx, kl_ratio=kl_ratio)
    log_ratio = token_log_ratio(logp, old_logp, mask)
    penalised = statistics["kl_penalised"]
    loss = (
        -torch.exp(log_ratio) * broadcast_advantages(advantages, logp) + kl_coef * log_ratio.abs() * penalised
    )
    diagnostics = {
        "kl_cov_fraction": penalised,
        "abs_log_ratio": log_ratio.abs(),
        "covariance": statistics["covariance"],
    }
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- adaptive clip ranges


def _etr_statistics(
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    *,
    adv_coef: float,
    group_factor: bool,
    **_other_params: object,
) -> Statistics:
    """ETR's per-sample clip-range factor ``eps_scale [B]`` over the whole batch: micro (``|A|``)
    times macro (the group's reward std), each normalised to mean 1 over the batch's rows."""
    magnitude = sequence_advantages(advantages.detach().abs(), mask)
    largest = magnitude.max() if magnitude.numel() else magnitude.new_zeros(())
    micro = 1.0 + adv_coef * magnitude / largest if largest > 0 else torch.ones_like(magnitude)
    scale = micro / micro.mean() if micro.numel() else micro
    if group_factor and ctx.rewards is not None and ctx.rewards.numel():
        sigma = group_std(ctx.rewards.float(), ctx.group_ids, unbiased=False).to(scale)
        if sigma.mean() > 0:
            scale = scale * sigma / sigma.mean()
    return {"eps_scale": scale}


@losses.register("etr", statistics=_etr_statistics)
def etr_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    adv_coef: float = 1.0,
    group_factor: bool = True,
    dual_clip: float | None = None,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """ETR (Zhang et al. 2026, "ETR: Outcome-Guided Elastic Trust Regions for Policy Optimization",
    arXiv:2601.03723): a per-sample clip range that widens for confident, informative samples.

    ``ε_i = ε₀·m_i·g_q`` for both ``eps_low`` and ``eps_high`` (``ε₀``), in the PPO clipped surrogate:
    - micro: ``m_i ∝ 1 + adv_coef·|A_i| / max|A|`` (``|A_i|`` the row's mean ``|A|`` for token advantages),
    - macro: ``g_q ∝ σ_q``, the population std of the rewards of the sample's group (``ctx.rewards``,
      ``ctx.group_ids``; off with ``group_factor=False`` or when the batch has no rewards),
    each normalised to mean 1 over the rows of the whole step's batch (the max too is the batch's),
    so equal ``|A|`` and equal ``σ_q`` give exactly ``ppo_clip`` with ``ε₀``. A group with ``σ_q = 0``
    gets ``ε = 0`` (its advantages are 0 under GRPO). The statistics come from the trainer
    (``statistics``); called without them, the loss takes them over the batch it is given.
    GUESS: the linear micro form, ``adv_coef = 1``, ``g ∝ σ_q``, and mean-1 normalisation (dividing
    by the maximum is the other reading; mean 1 keeps ``ε₀`` the typical range).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the PPO clip fractions and ``eps_scale`` (the factor ``m_i·g_q``).
    """
    _check_above_one("etr dual_clip", dual_clip)
    if statistics is None:
        statistics = _etr_statistics(advantages, mask, ctx, adv_coef=adv_coef, group_factor=group_factor)
    scale = statistics["eps_scale"].unsqueeze(1)
    loss, diagnostics = clipped_surrogate(
        token_ratio(logp, old_logp, mask),
        broadcast_advantages(advantages, logp),
        eps_low * scale,
        eps_high * scale,
        dual_clip,
    )
    diagnostics["eps_scale"] = scale
    return mask_outputs(loss, diagnostics, mask)


def _hapo_statistics(
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    *,
    pivot_quantile: float,
    **_other_params: object,
) -> Statistics:
    """HAPO's entropy score ``entropy_score [B, T]`` (ĥ), its quantile and extremes over the whole batch."""
    entropies = require_field(ctx.entropies, "entropies", "hapo").to(mask.device)
    return {"entropy_score": hapo_normalized_entropy(entropies, mask, pivot_quantile)}


@losses.register("hapo", statistics=_hapo_statistics, needs={"entropies"})
def hapo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    clip_alpha: float = 1.0,
    adv_beta: float = 1.0,
    dual_clip: float | None = 3.0,
    pivot_quantile: float = 0.5,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """HAPO parts (d) and (e) (Liu et al. 2025, "From Uniform to Heterogeneous: Tailoring Policy
    Optimization to Every Token's Nature", arXiv:2509.16591; checked against the authors' code), on
    the entropy score ``ĥ ∈ [−1, 1]`` of part (a) (:func:`grpozoo.algos.entropy.hapo_normalized_entropy`
    of ``ctx.entropies``).

    (e) Asymmetric adaptive clip: low-entropy tokens (``ĥ ≤ 0``) get ``eps_low·(1 − clip_alpha·ĥ)``
    (≥ eps_low: they may be pushed down further), high-entropy tokens (``ĥ > 0``) get
    ``eps_high·(1 + clip_alpha·ĥ)`` (room to explore); dual clip ``c = dual_clip`` on top.
    (d) Advantage redistribution: ``A_ent = A·(1 + adv_beta·ĥ)``; in the neutral zone
    ``1 − ε_l/2 < ρ < 1 + ε_h/2`` (the adapted ranges) high-entropy tokens keep ``A`` and low-entropy
    tokens use ``A_ent``; outside it the other way round.
    ``ĥ = 0`` leaves both ranges and ``A`` unchanged (then this is ``ppo_clip`` with ``dual_clip``).
    ``clip_alpha = 0`` / ``adv_beta = 0`` switch (e) / (d) off. ĥ's pivot quantile and extremes are
    taken over the real tokens of the whole step's batch (the authors' code takes them over its
    micro-batch; the two agree when a step is one micro-batch). The statistics come from the trainer
    (``statistics``); called without them, the loss takes them over the batch it is given.
    Part (c), the length-weighted group advantage, is the advantage ``hapo_length_weighted``; part
    (b), adaptive sampling temperature, is a generator hook.
    GUESS: ``pivot_quantile = 0.5`` (the median).
    Shapes: ``logp, old_logp, mask, ctx.entropies [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the PPO clip fractions, ``entropy_score`` (ĥ), ``advantage_redistributed``.
    """
    _check_above_one("hapo dual_clip", dual_clip)
    if statistics is None:
        statistics = _hapo_statistics(advantages, mask, ctx, pivot_quantile=pivot_quantile)
    h_hat = statistics["entropy_score"].to(logp.dtype)
    ratio = token_ratio(logp, old_logp, mask)
    low_entropy = h_hat <= 0
    eps_l = torch.where(low_entropy, eps_low * (1.0 - clip_alpha * h_hat), _bound(eps_low, h_hat))
    eps_h = torch.where(low_entropy, _bound(eps_high, h_hat), eps_high * (1.0 + clip_alpha * h_hat))
    adv = broadcast_advantages(advantages, logp).expand_as(logp)
    with torch.no_grad():
        neutral = (ratio > 1.0 - eps_l / 2) & (ratio < 1.0 + eps_h / 2)
        use_entropy_advantage = torch.where(low_entropy, neutral, ~neutral)
    adv = torch.where(use_entropy_advantage, adv * (1.0 + adv_beta * h_hat), adv)
    loss, diagnostics = clipped_surrogate(ratio, adv, eps_l, eps_h, dual_clip)
    diagnostics.update(entropy_score=h_hat, advantage_redistributed=use_entropy_advantage)
    return mask_outputs(loss, diagnostics, mask)
