"""Policy losses whose importance ratio spans more than one token: sequence (GSPO, GSPO-token, GMPO),
token/sequence mixtures (DHPO), subsentence segments (SSPO) and prefixes (MinPRO).

A sequence or segment ratio is a geometric mean, ``exp(mean_t (logp − old_logp))`` over the masked
tokens of the span (token log-ratios clamped to ``±LOG_RATIO_CLAMP`` first). Sequence-level values
are put on every real token of their sequence; the aggregation decides the weighting.
Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]``; every loss returns
``(loss [B, T], diagnostics {name: [B, T]})`` with 0 on padding.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

import torch

from grpozoo.algos.entropy import standardized_entropy
from grpozoo.algos.losses import Statistics, broadcast_advantages, require_field, sequence_advantages
from grpozoo.algos.losses.clipped import clipped_surrogate
from grpozoo.algos.masked import mask_outputs, masked_mean, row_mean, token_log_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts

# GUESS (SSPO): a token closes a subsentence when its text, trailing spaces and tabs removed, ends
# with one of these.
SUBSENTENCE_DELIMITERS = (".", ",", ";", ":", "!", "?", "\n")


# --------------------------------------------------------------------------- spans


def segment_mean(values: torch.Tensor, segment_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Each token gets the mean of ``values`` over the masked tokens of its segment (differentiable).

    ``segment_ids [B, T]`` (long, in ``[0, T)``) label spans within a row; equal labels in different
    rows are different segments. Shapes: ``values, segment_ids, mask [B, T]`` -> ``[B, T]``, 0 on padding.
    """
    b, t = values.shape
    m = (mask > 0).to(values.dtype)
    flat = (segment_ids.long() + torch.arange(b, device=values.device).unsqueeze(1) * t).flatten()
    sums = values.new_zeros(b * t).index_add(0, flat, (values * m).flatten())
    counts = values.new_zeros(b * t).index_add(0, flat, m.flatten())
    return (sums / counts.clamp_min(1.0))[flat].view(b, t) * m


def subsentence_ids(
    texts: Sequence[Sequence[str]], num_tokens: int, delimiters: Iterable[str] = SUBSENTENCE_DELIMITERS
) -> torch.Tensor:
    """SSPO's segment labels (Yang et al. 2025, arXiv:2511.04256) ``[B, num_tokens]``: a new
    subsentence starts after every token whose text (trailing spaces/tabs removed) ends with a
    delimiter; the delimiter token closes its subsentence. Tokens past a row's text count as
    non-delimiters. ``texts`` is ``[B][L_i]``."""
    ends = tuple(delimiters)
    closes = torch.zeros(len(texts), num_tokens, dtype=torch.long)
    for i, row in enumerate(texts):
        for j, text in enumerate(row[:num_tokens]):
            closes[i, j] = int(text.rstrip(" \t").endswith(ends))
    return closes.cumsum(dim=1) - closes


def _geometric_ratio(log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """GSPO's sequence ratio ``exp(mean_t log ρ_t)`` ``[B, 1]``."""
    return torch.exp(row_mean(log_ratio, mask)).unsqueeze(1)


# --------------------------------------------------------------------------- sequence ratio


@losses.register("gspo")
def gspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071).

    ``s_i = exp(mean_t (logp − old_logp))`` over the sequence's masked tokens, clipped at the sequence
    level: ``loss_i = −min(s_i·A_i, clip(s_i, 1−eps_low, 1+eps_high)·A_i)``, put on every real token of
    sequence i (use ``sequence_mean`` aggregation for the paper's mean over sequences). Token
    advantages ``[B, T]`` are averaged over each row first (use ``gspo_token`` for per-token credit).
    With one token per sequence this is ``ppo_clip``. Defaults: the paper's ``3e-4`` / ``4e-4``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the clip fractions (per sequence, on its tokens) and ``sequence_ratio``.
    """
    seq_ratio = _geometric_ratio(token_log_ratio(logp, old_logp, mask), mask).expand_as(logp)
    adv = sequence_advantages(advantages, mask).unsqueeze(1)
    loss, diagnostics = clipped_surrogate(seq_ratio, adv, eps_low, eps_high)
    diagnostics["sequence_ratio"] = seq_ratio
    return mask_outputs(loss, diagnostics, mask)


@losses.register("gspo_token")
def gspo_token_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 3e-4,
    eps_high: float = 4e-4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GSPO-token (Zheng et al. 2025, "Group Sequence Policy Optimization", arXiv:2507.18071), the
    variant that allows token advantages.

    ``s_{i,t} = sg(s_i)·π(y_t)/sg(π(y_t))``, i.e. ``log s_{i,t} = sg(mean log ρ) + logp_t − sg(logp_t)``:
    its value is the sequence ratio ``s_i`` (so the clip decision is per sequence) but its gradient
    flows through token t alone. ``loss_{i,t} = −min(s_{i,t}·A_{i,t}, clip(s_{i,t})·A_{i,t})``. With
    sequence advantages the values equal ``gspo``'s and so does the gradient of any aggregation that
    weights a sequence's tokens equally (sum, sequence mean).
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the clip fractions and ``sequence_ratio``.
    """
    seq_log_ratio = row_mean(token_log_ratio(logp, old_logp, mask), mask).detach().unsqueeze(1)
    ratio = torch.exp(seq_log_ratio + logp - logp.detach())
    loss, diagnostics = clipped_surrogate(ratio, broadcast_advantages(advantages, logp), eps_low, eps_high)
    diagnostics["sequence_ratio"] = ratio
    return mask_outputs(loss, diagnostics, mask)


@losses.register("gmpo")
def gmpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.4,
    eps_high: float = 0.4,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """GMPO (Zhao et al. 2025, "Geometric-Mean Policy Optimization", arXiv:2507.20673): maximise the
    geometric mean of the token-level rewards ``ρ_t·A`` instead of their arithmetic mean.

    Exact form (as the authors' code, in log space): ``ℓ_t = log ρ_t``; with ``s = sign(A_i)``,
    ``ℓ̃_t = s·min(s·ℓ_t, s·clip(ℓ_t, −eps_low, eps_high))`` (for ``A > 0`` only the upper clip binds,
    for ``A < 0`` only the lower one; a clipped token has no gradient);
    ``loss_i = −A_i·exp(mean_t ℓ̃_t)``, put on every real token (``sequence_mean`` aggregation gives
    the paper's mean over sequences). ``eps`` are in log space: the default 0.4 is the token range
    ``(e^−0.4, e^0.4)``. Token advantages are averaged over each row first.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``clip_fraction`` (``_low`` / ``_high``), ``sequence_ratio``.
    """
    raw = token_log_ratio(logp, old_logp, mask)
    adv = sequence_advantages(advantages, mask).unsqueeze(1)
    sign = torch.sign(adv)
    log_ratio = sign * torch.minimum(sign * raw, sign * raw.clamp(-eps_low, eps_high))
    seq_ratio = _geometric_ratio(log_ratio, mask).expand_as(logp)
    loss = -adv * seq_ratio
    with torch.no_grad():
        clip_low = (raw < -eps_low) & (adv < 0)
        clip_high = (raw > eps_high) & (adv > 0)
    diagnostics = {
        "clip_fraction": (clip_low | clip_high).float(),
        "clip_fraction_low": clip_low.float(),
        "clip_fraction_high": clip_high.float(),
        "sequence_ratio": seq_ratio,
    }
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- token/sequence mixture


def _dhpo_statistics(
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    *,
    mix: str,
    token_weight: float,
    entropy_scale: float,
    **_other_params: object,
) -> Statistics:
    """DHPO's token weight ``mix_weight``: ``token_weight`` (a scalar) for ``mix="average"``, or
    ``σ(entropy_scale·ĥ) [B, T]`` with ``ĥ`` the entropy standardised over the whole batch's real
    tokens for ``mix="entropy"``."""
    if mix == "average":
        return {"mix_weight": torch.tensor(float(token_weight), device=mask.device)}
    if mix == "entropy":
        entropies = require_field(ctx.entropies, "entropies", "dhpo").to(mask.device)
        return {"mix_weight": torch.sigmoid(entropy_scale * standardized_entropy(entropies, mask))}
    raise ValueError(f"dhpo: mix={mix!r} is not one of 'average', 'entropy'")


@losses.register("dhpo", statistics=_dhpo_statistics, needs={"entropies"})
def dhpo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    mix: Literal["average", "entropy"] = "average",
    token_weight: float = 0.5,
    entropy_scale: float = 1.0,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    seq_eps_low: float = 3e-4,
    seq_eps_high: float = 4e-4,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """DHPO (Min et al. 2026, "Orchestrating Tokens and Sequences: Dynamic Hybrid Policy Optimization
    for RLVR", arXiv:2601.05607): mix the token ratio (GRPO) and the sequence ratio (GSPO), each
    clipped in its own range before mixing.

    ``ρ̃_t = clip(ρ_t, 1−eps_low, 1+eps_high)``, ``ρ̃_seq = clip(s_i, 1−seq_eps_low, 1+seq_eps_high)``
    (``s_i`` the geometric-mean sequence ratio), ``ρ_mix = w·ρ̃_t + (1−w)·ρ̃_seq`` and
    ``loss = −min(A·(w·ρ_t + (1−w)·s_i), A·ρ_mix)``.
    Weights ``w``: ``mix="average"`` uses ``w = token_weight`` (0.5: the paper's averaged variant;
    1 gives ``ppo_clip``, 0 gives ``gspo``); ``mix="entropy"`` uses ``w_t = σ(entropy_scale·ĥ_t)``
    with ``ĥ`` the entropy of ``ctx.entropies`` standardised over the real tokens of the whole step's
    batch, so high-entropy fork tokens lean on token credit. On-policy the value is ``−A`` for any
    ``w``, and one outlier token ratio moves its ``ρ_mix`` by at most ``w·eps_high + (1−w)·seq_eps_high``.
    The weights come from the trainer (``statistics``); called without them, the loss takes them over
    the batch it is given.
    GUESS: the sigmoid form of the entropy weight and ``entropy_scale = 1``; the outer pessimistic
    ``min`` with the unclipped mixture; default ranges (DAPO's token range, GSPO's sequence range).
    Shapes: ``logp, old_logp, mask [B, T]`` (and ``ctx.entropies`` for ``"entropy"``);
    ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: ``clip_fraction`` (tokens where the clipped mixture is the smaller term), ``mix_weight``.
    """
    if statistics is None:
        statistics = _dhpo_statistics(
            advantages, mask, ctx, mix=mix, token_weight=token_weight, entropy_scale=entropy_scale
        )
    w = statistics["mix_weight"].to(logp.dtype)
    log_ratio = token_log_ratio(logp, old_logp, mask)
    ratio = torch.exp(log_ratio)
    seq_ratio = _geometric_ratio(log_ratio, mask)
    adv = broadcast_advantages(advantages, logp)
    mixed = w * ratio + (1.0 - w) * seq_ratio
    mixed_clipped = w * ratio.clamp(1.0 - eps_low, 1.0 + eps_high) + (1.0 - w) * seq_ratio.clamp(
        1.0 - seq_eps_low, 1.0 + seq_eps_high
    )
    loss = -torch.minimum(mixed * adv, mixed_clipped * adv)
    diagnostics = {"clip_fraction": (mixed_clipped * adv < mixed * adv).float(), "mix_weight": w}
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- segment ratio


def _sspo_statistics(
    advantages: torch.Tensor, mask: torch.Tensor, ctx: Rollouts, **_params: object
) -> Statistics:
    """SSPO's ``mean_entropy``: the mean of ``ctx.entropies`` over the batch's real tokens (a scalar)."""
    entropies = require_field(ctx.entropies, "entropies", "sspo").to(mask.device)
    return {"mean_entropy": masked_mean(entropies, mask)}


@losses.register("sspo", statistics=_sspo_statistics)
def sspo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    delimiters: str | Sequence[str] = SUBSENTENCE_DELIMITERS,
    entropy_min_scale: float = 0.5,
    entropy_max_scale: float = 2.0,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """SSPO (Yang et al. 2025, "SSPO: Subsentence-level Policy Optimization", arXiv:2511.04256): a
    subsentence importance ratio with an entropy-adaptive clip range.

    Each response is split into subsentences after tokens whose text (``ctx.completion_token_texts``)
    ends with a delimiter (:func:`subsentence_ids`; a string is a set of one-character delimiters).
    Every token of a segment uses the segment's geometric-mean ratio ``exp(mean_{t∈seg} log ρ_t)`` in
    the PPO clipped surrogate, with ``ε_seg = ε·clip(H̄_seg / H̄, entropy_min_scale, entropy_max_scale)``
    for both ``eps_low`` and ``eps_high`` (``H̄_seg`` the segment's mean of ``ctx.entropies``, ``H̄`` the
    mean over the real tokens of the whole step's batch; factor 1 when ``H̄ = 0``;
    ``entropy_min_scale = entropy_max_scale = 1`` turns it off). One segment per response gives GSPO's
    ratio, one token per segment the token ratio, and an extreme token only moves its own segment's
    ratio. ``H̄`` comes from the trainer (``statistics``); called without it, the loss takes it over
    the batch it is given.
    GUESS: the delimiter set, the ratio-of-means form of ``ε_seg`` with its bounds (0.5, 2), the
    base ``ε = 0.2``, and ``H̄`` over the step's batch.
    Shapes: ``logp, old_logp, mask, ctx.entropies [B, T]``, ``ctx.completion_token_texts [B][L_i]``;
    ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the clip fractions, ``segment_ratio``, ``eps_scale``.
    """
    texts = require_field(ctx.completion_token_texts, "completion_token_texts", "sspo")
    if statistics is None:
        statistics = _sspo_statistics(advantages, mask, ctx)
    segments = subsentence_ids(texts, logp.shape[1], delimiters).to(logp.device)
    seg_ratio = torch.exp(segment_mean(token_log_ratio(logp, old_logp, mask), segments, mask))
    batch_entropy = statistics["mean_entropy"]
    if batch_entropy > 0:
        entropies = require_field(ctx.entropies, "entropies", "sspo").to(logp)
        scale = (segment_mean(entropies, segments, mask) / batch_entropy).clamp(
            entropy_min_scale, entropy_max_scale
        )
    else:
        scale = torch.ones_like(logp)
    adv = broadcast_advantages(advantages, logp)
    loss, diagnostics = clipped_surrogate(seg_ratio, adv, eps_low * scale, eps_high * scale)
    diagnostics.update(segment_ratio=seg_ratio, eps_scale=scale)
    return mask_outputs(loss, diagnostics, mask)


# --------------------------------------------------------------------------- prefix ratio


def prefix_min_ratio(log_ratio: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """MinPRO's weight ``w_t = min_{k<t} ρ_k`` over the masked earlier tokens (1 for the first),
    detached. Padding never lowers the minimum. Shapes: ``[B, T]`` -> ``[B, T]``."""
    lr = log_ratio.detach().masked_fill(mask <= 0, float("inf"))
    shifted = torch.cat([lr.new_full((lr.shape[0], 1), float("inf")), lr[:, :-1]], dim=1)
    running_min = torch.cummin(shifted, dim=1).values
    return torch.exp(running_min.masked_fill(torch.isinf(running_min), 0.0))


@losses.register("minpro")
def minpro_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    max_weight: float | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """MinPRO (Lei et al. 2026, "A Step Back: Prefix Importance Ratio Stabilizes Policy Optimization",
    arXiv:2601.22718): the rigorous off-policy correction of token t is the prefix product
    ``∏_{k≤t} ρ_k``, which explodes; MinPRO weights token t by the non-cumulative
    ``w_t = min_{k<t} ρ_k`` instead (1 for the first).

    ``loss_t = −sg(w_t)·min(ρ_t·A, clip(ρ_t, 1−eps_low, 1+eps_high)·A)``: once an earlier token's
    probability dropped sharply, every later token's gradient is damped. ``w`` is causal (it does not
    depend on tokens ≥ t) and non-increasing in t. All ``ρ = 1`` gives the token-level GRPO loss.
    GUESS: ``w`` detached and multiplying the clipped token term; ``max_weight`` (None: uncapped; 1
    caps ``w ≤ 1``), since the paper's summary leaves open whether ``w`` is also capped.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    Diagnostics: the PPO clip fractions and ``prefix_weight``.
    """
    log_ratio = token_log_ratio(logp, old_logp, mask)
    weight = prefix_min_ratio(log_ratio, mask)
    if max_weight is not None:
        weight = weight.clamp(max=max_weight)
    loss, diagnostics = clipped_surrogate(
        torch.exp(log_ratio), broadcast_advantages(advantages, logp), eps_low, eps_high
    )
    diagnostics["prefix_weight"] = weight
    return mask_outputs(weight * loss, diagnostics, mask)
