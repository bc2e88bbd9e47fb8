"""Token weights and masks: ``fn(ctx: Rollouts, **params) -> weights [B, T]`` (float, 0 on padding).

Each runs once per step on the whole batch, after the advantages (``ctx.advantages`` is ``[B]`` or
``[B, T]``); the trainer multiplies the product of all configured token weights into the per-token
loss. Weights never carry a gradient. See docs/components.md.

- ``entropy_top_quantile``, ``earl``: train only the highest-entropy tokens (Wang et al. 2025; EARL).
- ``d3s_tokens``: train only the tokens with the highest ``|A|·H``, on a schedule (D³S).
- ``gtpo_conflict``: GTPO's protection of tokens shared by positive and negative completions.
- ``rollout_correction``: truncated / masked importance weights between sampler and learner.
"""

from __future__ import annotations

import math
from typing import Literal

import torch

from grpozoo.algos.masked import LOG_RATIO_CLAMP
from grpozoo.registry import token_weights
from grpozoo.rollouts import Rollouts

Scope = Literal["batch", "sequence"]


# ------------------------------------------------------------------ shared helpers


def _mask_of(ctx: Rollouts) -> torch.Tensor:
    return ctx.completion_mask.bool()


def _entropies_of(ctx: Rollouts) -> torch.Tensor:
    if ctx.entropies is None:
        raise ValueError("this token weighting reads ctx.entropies, which the generator did not record")
    return ctx.entropies


def _check_fraction(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def _keep_top_per_row(scores: torch.Tensor, mask: torch.Tensor, fraction: float) -> torch.Tensor:
    """Bool ``[R, N]``: in each row, the ``⌈fraction·n⌉`` real positions with the highest score
    (``n`` = real positions of the row). Ties are broken by position, earlier first, so the count
    is exact."""
    n = mask.sum(dim=1)
    # rounding to 9 decimals first keeps e.g. 0.7 * 10 = 7.000000000000001 from rounding up to 8,
    # while any positive share of a token (even 1e-9) still keeps one
    k = torch.ceil(torch.round(n.double() * fraction, decimals=9)).clamp(min=0).long()
    k = torch.minimum(k, n)
    finite = torch.nan_to_num(scores.float(), nan=-3.0e38, posinf=3.0e38, neginf=-3.0e38)
    ranked = torch.where(mask, finite, torch.full_like(finite, float("-inf")))
    order = torch.sort(ranked, dim=1, descending=True, stable=True).indices
    positions = torch.arange(scores.shape[1], device=scores.device).expand_as(order)
    rank = torch.empty_like(order).scatter_(1, order, positions)
    return (rank < k.unsqueeze(1)) & mask


def keep_top_fraction(
    scores: torch.Tensor, mask: torch.Tensor, fraction: float, scope: Scope
) -> torch.Tensor:
    """Float ``[B, T]`` 0/1: the top ``fraction`` of the real tokens by ``scores``, counted over the
    whole batch (``scope="batch"``) or within each sequence (``"sequence"``). No gradient."""
    _check_fraction("fraction", fraction)
    with torch.no_grad():
        if scope == "batch":
            keep = _keep_top_per_row(scores.reshape(1, -1), mask.reshape(1, -1), fraction).reshape(mask.shape)
        elif scope == "sequence":
            keep = _keep_top_per_row(scores, mask, fraction)
        else:
            raise ValueError(f"scope={scope!r} is not one of 'batch', 'sequence'")
    return keep.float()


def token_advantages(ctx: Rollouts) -> torch.Tensor:
    """``ctx.advantages`` as ``[B, T]`` (a sequence advantage repeated over its tokens)."""
    if ctx.advantages is None:
        raise ValueError("this token weighting reads ctx.advantages, which are not set yet")
    adv = ctx.advantages
    return adv.unsqueeze(1).expand_as(ctx.completion_mask) if adv.dim() == 1 else adv


# ------------------------------------------------------------------ entropy top quantile


@token_weights.register("entropy_top_quantile", needs={"entropies"})
def entropy_top_quantile(ctx: Rollouts, fraction: float = 0.2, scope: Scope = "batch") -> torch.Tensor:
    """High-entropy minority tokens (Wang et al. 2025, "Beyond the 80/20 Rule: High-Entropy Minority
    Tokens Drive Effective Reinforcement Learning for LLM Reasoning", arXiv:2506.01939; the mechanism
    EARL uses).

    Weight 1 on the tokens whose sampling entropy ``ctx.entropies`` is among the top ``fraction`` of
    the batch's real tokens (``scope="batch"``, the paper's choice) or of each sequence's tokens
    (``scope="sequence"``); weight 0 elsewhere and on padding. Exactly ``⌈fraction·N_valid⌉`` tokens
    are kept (ties broken by position, earlier first; the paper thresholds at the batch's
    ``1 − fraction`` entropy quantile, which keeps the same tokens when entropies are distinct).
    ``fraction=1`` gives the base loss. Shapes: ``ctx.entropies, ctx.completion_mask [B, T]`` -> ``[B, T]``.
    """
    return keep_top_fraction(_entropies_of(ctx), _mask_of(ctx), fraction, scope)


@token_weights.register("earl", needs={"entropies"})
def earl_weights(ctx: Rollouts, rho: float = 0.2, scope: Scope = "batch") -> torch.Tensor:
    """EARL entropy-gated updates (Shi et al. 2025, "EARL: Entropy-Aware RL Alignment of LLMs for
    Reliable RTL Code Generation", arXiv:2511.12033).

    Policy gradient only on the tokens in the top-``rho`` entropy quantile of the batch; the rest are
    masked. Exactly ``⌈rho·N_valid⌉`` tokens are kept, computed without gradient; ``rho=1`` gives the
    base loss. Same selection as ``entropy_top_quantile``.
    GUESS: ``rho=0.2`` and the batch-wide (not per-response) quantile.
    Shapes: ``ctx.entropies, ctx.completion_mask [B, T]`` -> ``[B, T]``.
    """
    return keep_top_fraction(_entropies_of(ctx), _mask_of(ctx), rho, scope)


# ------------------------------------------------------------------ D³S token level


def scheduled_ratio(
    step: int,
    total_steps: int,
    start: float,
    end: float,
    schedule: Literal["linear", "cosine", "constant"] = "linear",
) -> float:
    """A keep ratio moving from ``start`` at step 1 to ``end`` at ``total_steps`` (1-based steps).

    ``linear``: ``start + (end − start)·p``; ``cosine``: ``start + (end − start)·(1 − cos πp)/2``;
    ``constant``: ``start``; with progress ``p = (step − 1)/(total_steps − 1)`` clipped to [0, 1].
    """
    progress = 1.0 if total_steps <= 1 else min(max((step - 1) / (total_steps - 1), 0.0), 1.0)
    if schedule == "linear":
        shape = progress
    elif schedule == "cosine":
        shape = (1.0 - math.cos(math.pi * progress)) / 2.0
    elif schedule == "constant":
        shape = 0.0
    else:
        raise ValueError(f"schedule={schedule!r} is not one of 'linear', 'cosine', 'constant'")
    return start + (end - start) * shape


@token_weights.register("d3s_tokens", needs={"entropies"})
def d3s_token_weights(
    ctx: Rollouts,
    rho_start: float = 0.2,
    rho_end: float = 1.0,
    schedule: Literal["linear", "cosine", "constant"] = "linear",
    scope: Scope = "batch",
) -> torch.Tensor:
    """D³S token-level down-sampling (Wang et al. 2025, "Learning More with Less: A Dynamic Dual-Level
    Down-Sampling Framework for Efficient Policy Optimization", arXiv:2509.22115).

    Keeps (weight 1) the top ``ρ`` fraction of the batch's real tokens ranked by ``|A_{i,t}|·H_{i,t}``
    (``ctx.advantages`` ``[B]`` or ``[B, T]`` times ``ctx.entropies``), exactly ``⌈ρ·N_valid⌉`` tokens,
    weight 0 for the rest. ``ρ`` follows a schedule from ``rho_start`` at the first step to ``rho_end``
    at ``ctx.total_steps`` (see :func:`scheduled_ratio`): aggressive down-sampling early, relaxing to
    1 (a no-op) by the end. ``rho_start = rho_end = 1`` reproduces the base loss.

    D³S's sample level (keep the size-k subset of each group's rollouts that maximises Var(A)) is a
    group filter, a separate component; this function is only the token level.
    GUESS: ``rho_start=0.2``, ``rho_end=1.0``, a ``linear`` schedule over the whole run, and a
    batch-wide ranking (``scope="batch"``; ``"sequence"`` ranks within each completion).
    Shapes: ``ctx.advantages [B] or [B, T]``, ``ctx.entropies [B, T]`` -> ``[B, T]``.
    """
    _check_fraction("rho_start", rho_start)
    _check_fraction("rho_end", rho_end)
    rho = scheduled_ratio(ctx.step, ctx.total_steps, rho_start, rho_end, schedule)
    scores = token_advantages(ctx).detach().abs() * _entropies_of(ctx).detach()
    return keep_top_fraction(scores, _mask_of(ctx), rho, scope)


# ------------------------------------------------------------------ GTPO conflict tokens


def _leading_conflict_run(
    ids: torch.Tensor, mask: torch.Tensor, pos: torch.Tensor, neg: torch.Tensor
) -> torch.Tensor:
    """Bool ``[G, T]`` for one group: the leading run of positions where the completion's token id
    also sits, at the same position, in at least one positive and one negative completion."""
    same = (ids.unsqueeze(1) == ids.unsqueeze(0)) & mask.unsqueeze(1) & mask.unsqueeze(0)  # [G, G, T]
    in_pos = (same & pos.view(1, -1, 1)).any(dim=1)
    in_neg = (same & neg.view(1, -1, 1)).any(dim=1)
    conflict = in_pos & in_neg & mask
    return torch.cumprod(conflict.long(), dim=1).bool()


def _right_aligned(x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Row ``i`` read backwards from its last real token: ``out[i, s] = x[i, L_i − 1 − s]`` for
    ``s < L_i``, and the mask of those positions. Applying it twice gives back the real positions."""
    s = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    index = (lengths.unsqueeze(1) - 1 - s).clamp(min=0)
    return x.gather(1, index), s < lengths.unsqueeze(1)


def _sequence_signs(ctx: Rollouts) -> torch.Tensor:
    """Each row's advantage, ``[B]``: GTPO's GRPO advantage before entropy shaping when the ``gtpo``
    estimator handed it on, else ``ctx.advantages`` (summed over real tokens when ``[B, T]``)."""
    adv = ctx.extras.get("gtpo_unshaped_advantage") if ctx.extras else None
    if adv is None:
        adv = token_advantages(ctx)
    if adv.dim() == 2:
        adv = (adv * ctx.completion_mask).sum(dim=1)
    return adv.detach()


@token_weights.register("gtpo_conflict")
def gtpo_conflict_weights(
    ctx: Rollouts, weight: float = 2.0, divide_by_conflict_count: bool = False
) -> torch.Tensor:
    """GTPO conflict-token weights (Simoni et al. 2025, "GTPO: Trajectory-Based Policy Optimization in
    Large Language Models", arXiv:2508.03772; code-verified against the authors' repository).

    Within each group, among completions with non-zero advantage (positive: A > 0, negative: A < 0),
    a token is a *conflict* token when the same token id sits at the same position in at least one
    positive and one negative completion. Only the leading contiguous run of such positions counts
    (a shared prefix); the same check is repeated right-aligned from each completion's end (a shared
    suffix, e.g. answer tags). Conflict tokens weigh ``weight`` (W_RAW = 2) in positive completions
    and 0 in negative ones (the negative update is skipped); all other tokens weigh 1, padding 0.
    Example: positive "ABCx", negative "ABDy" -> ``[2, 2, 1, 1]`` and ``[0, 0, 1, 1]``.

    The sign of a completion comes from the GRPO advantage before GTPO's entropy shaping when the
    ``gtpo`` estimator ran (``ctx.extras["gtpo_unshaped_advantage"]``, as in the repository), else
    from ``ctx.advantages``. A token in both the prefix and the suffix run weighs ``weight`` once
    (the repository multiplies the two masks, giving ``weight²``; the paper describes one factor).
    ``divide_by_conflict_count=True`` reproduces a repository detail not in the paper: every token of
    a completion is divided by its number of conflict tokens (at least 1).
    Shapes: ``ctx.completion_ids, ctx.completion_mask [B, T]``, ``ctx.group_ids [B]`` -> ``[B, T]``.
    """
    ids, mask = ctx.completion_ids, _mask_of(ctx)
    signs = _sequence_signs(ctx)
    lengths = mask.sum(dim=1)
    conflict = torch.zeros_like(mask)
    for group in torch.unique(ctx.group_ids):
        rows = (ctx.group_ids == group).nonzero().squeeze(1)
        pos, neg = signs[rows] > 0, signs[rows] < 0
        if not (pos.any() and neg.any()):
            continue
        g_ids, g_mask, g_len = ids[rows], mask[rows], lengths[rows]
        prefix = _leading_conflict_run(g_ids, g_mask, pos, neg)
        rev_ids, rev_mask = _right_aligned(g_ids, g_len)
        suffix_rev = _leading_conflict_run(rev_ids, rev_mask, pos, neg)
        suffix = _right_aligned(suffix_rev, g_len)[0] & g_mask
        conflict[rows] = (prefix | suffix) & (pos | neg).unsqueeze(1)
    conflict_weight = (signs > 0).float().unsqueeze(1) * weight  # [B, 1]: W_RAW if positive, else 0
    weights = torch.where(conflict, conflict_weight, torch.ones_like(conflict_weight)) * mask
    if divide_by_conflict_count:
        weights = weights / conflict.sum(dim=1, keepdim=True).clamp(min=1)
    return weights.float()


# ------------------------------------------------------------------ rollout correction


@token_weights.register("rollout_correction", needs={"old_logprobs"})
def rollout_correction(
    ctx: Rollouts,
    mode: Literal["token_tis", "token_mis", "sequence_tis", "sequence_mis"] = "token_tis",
    cap: float = 2.0,
    geometric: bool = False,
    mis_weight: Literal["ratio", "indicator"] = "ratio",
    cap_low: float | None = None,
) -> torch.Tensor:
    """Importance weights between the learner and the sampler (the rollout-policy correction; Yao et
    al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training", blog post).

    When the generator's log-probs ``ctx.sampling_logprobs`` differ from the learner's
    ``ctx.old_logprobs`` (before the update), the samples are slightly off-policy. With the ratio
    ``r = exp(old_logprobs − sampling_logprobs)``:

    - ``token_tis``: ``w = min(r, cap)`` per token (truncated importance sampling);
    - ``token_mis``: ``w = r·1[r ≤ cap]`` per token (masked importance sampling: tokens whose ratio
      exceeds the cap are dropped); ``mis_weight="indicator"`` gives ``1[r ≤ cap]`` (drop only,
      no reweighting). ``cap_low`` also drops ``r < cap_low`` (off when None);
    - ``sequence_tis`` / ``sequence_mis``: the same on the sequence ratio
      ``r_i = exp(Σ_t (old − sampling))`` over the real tokens, or its geometric mean
      ``exp(mean_t (old − sampling))`` with ``geometric=True``; one weight per sequence, put on each
      of its real tokens.

    Identical log-probs give weight 1 on every real token. Weights are detached and 0 on padding.
    Shapes: ``ctx.old_logprobs, ctx.sampling_logprobs, ctx.completion_mask [B, T]`` -> ``[B, T]``.
    """
    if ctx.old_logprobs is None:
        raise ValueError(
            "rollout_correction needs ctx.old_logprobs (declared in its registration's needs); none were computed"
        )
    if cap <= 0:
        raise ValueError(f"rollout_correction: cap must be > 0, got {cap}")
    if mis_weight not in ("ratio", "indicator"):
        raise ValueError(f"rollout_correction: mis_weight={mis_weight!r} is not one of 'ratio', 'indicator'")
    level, _, kind = mode.partition("_")
    if level not in ("token", "sequence") or kind not in ("tis", "mis"):
        raise ValueError(
            f"rollout_correction: mode={mode!r} is not one of 'token_tis', 'token_mis', 'sequence_tis', 'sequence_mis'"
        )
    with torch.no_grad():
        mask = ctx.completion_mask.float()
        diff = ctx.old_logprobs.detach().float() - ctx.sampling_logprobs.detach().float()
        log_ratio = torch.where(mask.bool(), torch.nan_to_num(diff), torch.zeros_like(diff))
        if level == "sequence":
            log_ratio = log_ratio.sum(dim=1, keepdim=True)
            if geometric:
                log_ratio = log_ratio / mask.sum(dim=1, keepdim=True).clamp(min=1)
        ratio = torch.exp(log_ratio.clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP))  # far above any cap
        if kind == "tis":
            weights = ratio.clamp(max=cap)
        else:
            keep = ratio <= cap
            if cap_low is not None:
                keep = keep & (ratio >= cap_low)
            weights = (ratio if mis_weight == "ratio" else torch.ones_like(ratio)) * keep
        return weights * mask
