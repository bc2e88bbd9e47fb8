"""Group-relative advantage estimators: a sample's reward against statistics of its own group."""

from __future__ import annotations

import math
from typing import Literal

import torch

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.batch_baselines import whiten_over_batch
from grpozoo.algos.groups import (
    group_count,
    group_ids_from_keys,
    group_is_constant,
    group_mad,
    group_mean,
    group_median,
    group_median_pivot,
    group_std,
    group_sum,
    group_weighted_mean,
    leave_one_out_mean,
)
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


@advantages.register("grpo")
def grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """GRPO group-relative advantage (Shao et al. 2024, "DeepSeekMath: Pushing the Limits of
    Mathematical Reasoning in Open Language Models", arXiv:2402.03300).

    ``A_i = (r_i − mean_G r) / (std + eps)`` with the std of the group (``scale="group"``, GRPO),
    of the whole batch (``"batch"``), or no division at all (``"none"``, Dr.GRPO, Liu et al. 2025).
    Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``. A group whose rewards are all equal gets 0.
    The KL belongs in the loss (the paper's choice), so ``algorithm.kl.mode=reward`` is refused: with
    the KL in the reward, the group std would blow tiny KL differences up to unit advantages in a
    group whose rewards are all equal.
    """
    centred = rewards - group_mean(rewards, group_ids)
    if scale == "group":
        return centred / (group_std(rewards, group_ids) + eps)
    if scale == "batch":
        batch_std = rewards.std(unbiased=True) if rewards.numel() > 1 else rewards.new_zeros(())
        return centred / (batch_std + eps)
    if scale == "none":
        return centred
    raise ValueError(f"grpo advantage: scale={scale!r} is not one of 'group', 'batch', 'none'")


# ---------------------------------------------------------------------------------------------- helpers


def _masked_group_standardise(
    values: torch.Tensor, present: torch.Tensor, group_ids: torch.Tensor, eps: float
) -> torch.Tensor:
    """``(v − mean)/(std + eps)`` with the mean and unbiased std of each group's present members;
    absent members (``present`` False) are left out of the statistics and get 0."""
    w = present.double()
    v = torch.where(present, values.double(), torch.zeros_like(values, dtype=torch.float64))
    mean = group_weighted_mean(v, w, group_ids).double()
    n = group_sum(w, group_ids).double()
    var = group_sum(w * (v - mean) ** 2, group_ids).double() / (n - 1).clamp(min=1)
    return torch.where(present, (v - mean) / (var.sqrt() + eps), torch.zeros_like(v))


def _log_binomial(n: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """``log C(n, k)`` for ``0 ≤ k ≤ n`` (float64); −inf elsewhere (C = 0)."""
    valid = (k >= 0) & (k <= n) & (n >= 0)
    n_, k_ = n.clamp(min=0), k.clamp(min=0)
    value = torch.lgamma(n_ + 1) - torch.lgamma(k_ + 1) - torch.lgamma((n_ - k_).clamp(min=0) + 1)
    return torch.where(valid, value, torch.full_like(value, float("-inf")))


# ---------------------------------------------------------------------------------------------- baselines


@advantages.register("rloo", kl_in_reward="sequence")
def rloo_advantage(
    rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts | None = None
) -> torch.Tensor:
    """RLOO leave-one-out advantage (Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style
    Optimization for Learning from Human Feedback in LLMs", arXiv:2402.14740).

    ``A_i = r_i − mean_{j≠i} r_j`` (= ``n/(n−1)·(r_i − mean_G r)``). A single-member group gets 0.
    With the KL folded into the reward, ``r_i`` is the sequence return ``r_i − β·Σ_t kl_t``: the paper
    treats the whole completion as one action with the KL-regularised reward, and without a std
    division the penalty keeps its scale. Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    return rewards - leave_one_out_mean(rewards, group_ids)


@advantages.register("opo")
def opo_advantage(rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts) -> torch.Tensor:
    """OPO length-weighted optimal baseline (Hao et al. 2025, "On-Policy RL with Optimal Reward
    Baseline", arXiv:2505.23585).

    ``b = Σ_j L_j r_j / Σ_j L_j`` over the group, with ``L`` the completion lengths from
    ``ctx.completion_mask`` (the optimal baseline when ‖∇log π(y)‖² ∝ |y|); ``A_i = r_i − b``.
    Equal lengths give the group-mean baseline (Dr.GRPO's centring). A group whose completions are all
    empty falls back to its plain mean. Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    baseline = group_weighted_mean(rewards, ctx.completion_lengths.double(), group_ids)
    return rewards - baseline.to(rewards.dtype if rewards.is_floating_point() else baseline.dtype)


@advantages.register("gpg")
def gpg_advantage(
    rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts | None = None
) -> torch.Tensor:
    """GPG advantage (Chu et al. 2025, "GPG: A Simple and Strong Reinforcement Learning Baseline for
    Model Reasoning", arXiv:2504.02546): group-mean centring without std division, times a
    valid-sample correction.

    ``A_i = α (r_i − mean_G r)`` with ``α = B / max(B − M, 1)``, where ``M`` is the number of samples
    in zero-variance groups (they carry no gradient), so the batch-mean loss is rescaled to the mean
    over the samples that do. Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    b = rewards.numel()
    m = int(group_is_constant(rewards, group_ids).sum())
    alpha = b / max(b - m, 1)
    return alpha * grpo_advantage(rewards, group_ids, ctx, scale="none")


@advantages.register("maxrl")
def maxrl_advantage(
    rewards: torch.Tensor, group_ids: torch.Tensor, ctx: Rollouts | None = None, eps: float = 1e-6
) -> torch.Tensor:
    """MaxRL advantage (Tajwar et al. 2026, "Maximum Likelihood Reinforcement Learning",
    arXiv:2602.02710).

    ``A_i = (r_i − mean_G r)/(mean_G r + eps)``: for binary rewards the REINFORCE estimate of
    ``∇ log p`` (the maximum-likelihood gradient) rather than ``∇ p``, so hard prompts (small pass
    rate ``p``) weigh more. An all-zero group gets 0. The method assumes rewards ≥ 0; a group with a
    negative mean is divided by ``eps`` alone (the mean is clamped at 0) so the value stays finite.
    Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    mean = group_mean(rewards, group_ids)
    return (rewards - mean) / (mean.clamp(min=0) + eps)


@advantages.register("pass_at_k")
def pass_at_k_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    k: int = 2,
    threshold: float = 0.5,
) -> torch.Tensor:
    """Analytic Pass@k-training advantage (Chen et al. 2025, "Pass@k Training for Adaptively Balancing
    Exploration and Exploitation of Large Reasoning Models", arXiv:2508.10751).

    For a group of ``n`` samples with ``c`` correct (``r ≥ threshold``), the group reward is the
    expected pass@k of a random k-subset, ``R̄ = 1 − C(n−c, k)/C(n, k)``, with ``σ = sqrt(R̄(1−R̄))``:
    a correct sample gets ``(1 − R̄)/σ``, an incorrect one
    ``(1 − R̄ − C(n−c−1, k−1)/C(n−1, k−1))/σ``; 0 when ``σ = 0``. ``k = 1`` is GRPO with the
    population std. A group smaller than ``k`` uses ``k = n``. Shapes: ``rewards [B]``,
    ``group_ids [B]`` -> ``[B]``.

    GUESS: ``k = 2`` by default, for the default groups of 4 (``k`` must stay well below the group
    size: with ``k = n`` every group holding one correct sample has ``R̄ = 1`` and no signal).
    """
    if k < 1:
        raise ValueError(f"pass_at_k advantage: k={k} must be at least 1")
    correct = rewards >= threshold
    n = group_count(group_ids)
    c = group_sum(correct.double(), group_ids).double()
    kk = n.clamp(max=k)
    none_pass = torch.exp(_log_binomial(n - c, kk) - _log_binomial(n, kk))
    mean = 1.0 - none_pass
    std = (mean * (1.0 - mean)).clamp(min=0).sqrt()
    neg_share = torch.exp(_log_binomial(n - c - 1, kk - 1) - _log_binomial(n - 1, kk - 1))
    numerator = torch.where(correct, 1.0 - mean, 1.0 - mean - neg_share)
    safe = torch.where(std > 0, std, torch.ones_like(std))
    out = torch.where(std > 0, numerator / safe, torch.zeros_like(std))
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


@advantages.register("gdpo")
def gdpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    weights: dict[str, float] | None = None,
    whiten: Literal["token", "sequence"] = "token",
    eps: float = 1e-4,
) -> torch.Tensor:
    """GDPO group reward-decoupled normalisation (Liu et al. 2026, "GDPO: Group reward-Decoupled
    Normalization Policy Optimization for Multi-reward RL Optimization", arXiv:2601.05242).

    Each part of ``ctx.reward_parts`` is normalised within its group, ``(r − mean)/(std + eps)``
    (unbiased std over the members that have a value; NaN = no opinion, left out and contributing 0),
    the normalised parts are summed with ``weights`` (name -> weight, default 1 each), and the sum is
    whitened over the batch as REINFORCE++ whitens its returns: over every completion token
    (``whiten="token"``, the default, so long completions weigh more) or every completion
    (``"sequence"``), with the unbiased std, see :func:`whiten_over_batch`. So a part with a large
    scale cannot drown a small-scale one, as it does when the summed reward is normalised. Without
    reward parts the total reward is the one part. A KL penalty is not one of the parts, so
    ``algorithm.kl.mode=reward`` is refused. Shapes: ``rewards [B]``, ``group_ids [B]``, parts
    ``{name: [B]}``, ``ctx.completion_mask [B, T]`` -> ``[B]``.
    """
    parts = dict(ctx.reward_parts) or {"reward": rewards}
    weights = dict(weights or {})
    unknown = sorted(set(weights) - set(parts))
    if unknown:
        raise ValueError(
            f"gdpo advantage: weights name unknown reward parts {unknown}; parts: {sorted(parts)}"
        )
    total = torch.zeros(rewards.shape, dtype=torch.float64)
    for name, part in parts.items():
        part = torch.as_tensor(part, dtype=torch.float64)
        total = total + weights.get(name, 1.0) * _masked_group_standardise(
            part, ~part.isnan(), group_ids, eps
        )
    out = whiten_over_batch(total, ctx.completion_mask, whiten, eps, unbiased=True)
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


# ---------------------------------------------------------------------------------------------- variants


@advantages.register("ngrpo")
def ngrpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    r_max: float = 1.0,
    eps: float = 1e-6,
) -> torch.Tensor:
    """NGRPO advantage calibration (Nan et al. 2025, "NGRPO: Negative-enhanced Group Relative Policy
    Optimization", arXiv:2509.18851).

    One virtual sample with reward ``r_max`` joins each group for the statistics only:
    ``μ'`` and ``σ'`` (unbiased) are the mean and std of ``(r_1 … r_G, r_max)``, and
    ``A_i = (r_i − μ')/(σ' + eps)`` for the G real samples. An all-wrong group now gets a negative
    advantage; an all-``r_max`` group gets 0. Pair with the asymmetric clip ``eps_low=0.16,
    eps_high=0.24``. Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    r = rewards.double()
    n = group_count(group_ids)
    mean = (group_sum(r, group_ids).double() + r_max) / (n + 1)
    squares = group_sum((r - mean) ** 2, group_ids).double() + (r_max - mean) ** 2
    std = (squares / n).sqrt()  # unbiased over the n + 1 values
    out = (r - mean) / (std + eps)
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def _bnpo_part(
    values: torch.Tensor,
    present: torch.Tensor,
    group_ids: torch.Tensor,
    alpha: float | None,
    beta: float | None,
    max_weight: float,
) -> torch.Tensor:
    """BNPO advantage of one reward in [0, 1] (absent members left out, 0 there)."""
    w = present.double()
    v = torch.where(present, values.double(), torch.zeros_like(values, dtype=torch.float64))
    p = group_weighted_mean(v, w, group_ids).double().clamp(0.0, 1.0)
    if alpha is None or beta is None:
        # method-of-moments Beta fit over the prompts' pass rates (one value per group)
        dense = torch.unique(group_ids, return_inverse=True)[1]
        num_groups = int(dense.max()) + 1 if dense.numel() else 0
        per_group = torch.zeros(num_groups, dtype=torch.float64)
        rates = per_group.scatter_reduce(0, dense, p, "amax", include_self=False)
        has_value = per_group.scatter_reduce(0, dense, w, "amax", include_self=False) > 0
        rates = rates[has_value]
        m = rates.mean() if rates.numel() else torch.tensor(0.0, dtype=torch.float64)
        v_rates = rates.var() if rates.numel() > 1 else torch.tensor(0.0, dtype=torch.float64)
        if v_rates > 0:
            s = m * (1 - m) / v_rates - 1
            fit_alpha, fit_beta = (
                float((1 + m * s / 3).clamp(min=1.0)),
                float((1 + (1 - m) * s / 3).clamp(min=1.0)),
            )
        else:
            fit_alpha = fit_beta = 1.0
        alpha = fit_alpha if alpha is None else alpha
        beta = fit_beta if beta is None else beta
    log_beta_fn = math.lgamma(alpha) + math.lgamma(beta) - math.lgamma(alpha + beta)
    log_pdf = (
        torch.xlogy(torch.tensor(alpha - 1.0), p) + torch.xlogy(torch.tensor(beta - 1.0), 1 - p) - log_beta_fn
    )
    weight = torch.exp(-log_pdf).clamp(0.0, max_weight)
    return torch.where(present, weight * (v - p), torch.zeros_like(v))


@advantages.register("bnpo")
def bnpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    reward_min: float = 0.0,
    reward_max: float = 1.0,
    alpha: float | None = None,
    beta: float | None = None,
    max_weight: float = 1e6,
    decompose: bool = False,
) -> torch.Tensor:
    """BNPO Beta-normalised advantage (Xiao et al. 2025, "BNPO: Beta Normalization Policy
    Optimization", arXiv:2506.02864).

    Rewards are mapped affinely to [0, 1] by ``(r − reward_min)/(reward_max − reward_min)``
    (clamped); ``p`` is the group's pass rate (mean mapped reward). A method-of-moments Beta fit over
    the prompts' ``p`` (mean ``m``, unbiased variance ``v``) gives ``a = m(m(1−m)/v − 1)``,
    ``b = (1−m)(m(1−m)/v − 1)``, ``α = max(1, 1 + a/3)``, ``β = max(1, 1 + b/3)``, and
    ``A = (r − p)/Beta_pdf(p; α, β)`` with the weight ``1/pdf`` clamped to ``[0, max_weight]``.
    ``α = β = 1`` is REINFORCE with the group-mean baseline; ``α = β = 3/2`` is ``π/8`` times GRPO with
    the population std. ``alpha``/``beta`` fix the parameters instead of fitting them.

    With ``decompose`` the advantage is computed for each part of ``ctx.reward_parts`` (each mapped
    with the same bounds, NaN = absent) and averaged over the parts (the authors' code divides the sum
    by the number of parts). Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.

    GUESS: the reward bounds default to [0, 1] (the authors' defaults). When the prompts' pass rates
    have zero variance (one prompt, or all equal) no Beta can be fitted and ``α = β = 1`` is used
    (the authors' code divides by zero there); a single-member group's baseline is its own reward.
    """
    if reward_max <= reward_min:
        raise ValueError(f"bnpo advantage: reward_max={reward_max} must exceed reward_min={reward_min}")
    parts = dict(ctx.reward_parts) if decompose and ctx is not None else {}
    parts = parts or {"reward": rewards}
    total = torch.zeros(rewards.shape, dtype=torch.float64)
    for part in parts.values():
        part = torch.as_tensor(part, dtype=torch.float64)
        mapped = ((part - reward_min) / (reward_max - reward_min)).clamp(0.0, 1.0)
        total = total + _bnpo_part(mapped, ~part.isnan(), group_ids, alpha, beta, max_weight)
    out = total / len(parts)
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


@advantages.register("dgpo")
def dgpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    temperature: float = 2.0,
    question_weighting: bool = True,
    eps: float = 1e-4,
) -> torch.Tensor:
    """DGPO difficulty-aware advantage (Dai et al. 2026, "Harder Is Better: Boosting Mathematical
    Reasoning via Difficulty-Aware GRPO and Multi-Aspect Question Reformulation", arXiv:2601.20614;
    MathForge).

    DGAE: ``A_i = G (r_i − mean)/(Σ_j |r_j − mean| + eps)`` (mean-absolute-deviation scaling), so
    ``Σ_i |A_i| = G`` in every non-degenerate group, whatever its difficulty (with the std it is
    ``2G·sqrt(p(1−p))``, smaller for hard groups).

    DQW (``question_weighting``): over the valid groups (rewards not all equal), a group's weight is
    ``w_q = N_valid · softmax_q(−acc_q / temperature)`` with ``acc_q`` its mean reward, so harder
    groups weigh more and the weights average 1; other groups keep ``w = 1`` (their A is 0 anyway).
    The weight multiplies the advantage, which for a sequence-level advantage under a clipped surrogate
    is the same as weighting the question's loss. Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.
    """
    r = rewards.double()
    centred = r - group_mean(r, group_ids)
    n = group_count(group_ids)
    adv = n * centred / (group_sum(centred.abs(), group_ids).double() + eps)
    if question_weighting:
        valid = ~group_is_constant(r, group_ids)
        logits = -group_mean(r, group_ids).double() / temperature
        if bool(valid.any()):
            logits = logits - logits[valid].max()
        share = valid.double() / n  # each group counted once when summed over its rows
        num_valid = share.sum()
        denom = (share * logits.exp()).sum()
        weight = torch.where(valid, num_valid * logits.exp() / denom.clamp(min=1e-300), torch.ones_like(r))
        adv = weight * adv
    return adv.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


def _stratum_keys(ctx: Rollouts, pattern: str, part: str | None) -> torch.Tensor:
    if part is not None:
        sources = {**ctx.reward_parts, **ctx.extras}
        if part not in sources:
            raise ValueError(
                f"stratified_grpo advantage: no reward part or extra named {part!r}; have {sorted(sources)}"
            )
        return torch.as_tensor(sources[part], dtype=torch.float64)
    return torch.tensor([float(text.count(pattern)) if pattern else 0.0 for text in ctx.completions])


@advantages.register("stratified_grpo")
def stratified_grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    alpha: float = 0.8,
    stratum_pattern: str = "<search>",
    stratum_part: str | None = None,
    scope: Literal["group", "batch"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """Stratified Advantage Normalisation blended with the standard one (Zhu et al. 2025, "Stratified
    GRPO: Handling Structural Heterogeneity in Reinforcement Learning of LLM Search Agents",
    arXiv:2510.06214).

    Trajectories are split into strata by a structural key: the number of occurrences of
    ``stratum_pattern`` in the completion (e.g. search calls), or the value of the reward part / extra
    named ``stratum_part``. ``A^SAN = (r − μ_k)/(σ_k + eps)`` within stratum k, ``A^GN`` the same over
    the whole scope (GRPO's normalisation), and ``A = alpha·A^SAN + (1 − alpha)·A^GN``. With ``scope``
    "group" the strata live inside each prompt's group (key = (prompt, stratum)) and GN is GRPO; with
    "batch" strata span the batch and GN is global batch normalisation. One stratum gives GRPO.
    Statistics as in ``grpo`` (unbiased std). Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``.

    GUESS: ``alpha = 0.8`` (the blend weight), ``scope = "group"``, and the default key (count of
    ``"<search>"``) are not fixed by the abstract.
    """
    if scope not in ("group", "batch"):
        raise ValueError(f"stratified_grpo advantage: scope={scope!r} is not one of 'group', 'batch'")
    base = group_ids if scope == "group" else torch.zeros_like(group_ids)
    strata = group_ids_from_keys(base, _stratum_keys(ctx, stratum_pattern, stratum_part))
    san = grpo_advantage(rewards, strata, ctx, scale="group", eps=eps)
    if alpha == 1.0:
        return san
    gn = grpo_advantage(rewards, base, ctx, scale="group", eps=eps)
    return alpha * san + (1.0 - alpha) * gn


@advantages.register("mc_grpo")
def mc_grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts | None = None,
    scale: Literal["none", "mad", "std"] = "none",
    eps: float = 1e-3,
) -> AdvantageOutput:
    """MC-GRPO median-centred advantage (Kim 2026, "MC-GRPO: Median-Centered Group Relative Policy
    Optimization for Small-Rollout Reinforcement Learning", arXiv:2601.22582).

    Sample G+1 rollouts per prompt (``rollout.group_size`` odd); the baseline is the group median and
    ``A_i = r_i − median``, divided by ``MAD + eps`` (``scale="mad"``, the authors' code), by
    ``std + eps`` (``"std"``, unbiased), or by nothing (``"none"``). The pivot, the median member, has
    A = 0 and is dropped (``keep`` False), so G rows per group learn. Exactly one pivot per group, even
    under ties (the earliest tied row); an even group's median is its lower middle value (the pivot's).
    With binary rewards the median is the majority outcome, so only the minority gets gradient, and the
    MAD is 0 (``"mad"`` then multiplies A by 1/eps = 1000), which is why the default is ``"none"``.
    Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``AdvantageOutput(advantages [B], keep [B])``.
    """
    median = group_median(rewards, group_ids, lower=True)
    centred = rewards - median
    if scale == "mad":
        centred = centred / (group_mad(rewards, group_ids, lower=True) + eps)
    elif scale == "std":
        centred = centred / (group_std(rewards, group_ids) + eps)
    elif scale != "none":
        raise ValueError(f"mc_grpo advantage: scale={scale!r} is not one of 'none', 'mad', 'std'")
    pivot = group_median_pivot(rewards, group_ids)
    advantages_ = torch.where(pivot, torch.zeros_like(centred), centred)
    return AdvantageOutput(advantages_, keep=~pivot)
