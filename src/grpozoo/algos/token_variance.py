"""Token weights from the variation of a position across the completions of a group (TW-GRPO).

``fn(ctx: Rollouts, **params) -> weights [B, T]`` (float, 0 on padding), as every token weighting
(see :mod:`grpozoo.algos.token_weights`)."""

from __future__ import annotations

import torch

from grpozoo.algos.groups import group_sum
from grpozoo.registry import token_weights
from grpozoo.rollouts import Rollouts


@token_weights.register("tw_variance")
def tw_variance_weights(ctx: Rollouts, min_weight: float = 0.0) -> torch.Tensor:
    """TW-GRPO's token weights (Dang et al. 2025, "Reinforcing Video Reasoning with Focused
    Thinking", arXiv:2505.24718): tokens whose statistics vary across the group's completions carry
    more of the loss, tokens every completion shares (a stock reasoning prefix) less.

    At position t of a row, ``v_t`` is the (population) variance, over the rows of its group that
    reach t, of the sampled token's probability ``exp(ctx.sampling_logprobs)``; the weight is
    ``w = min_weight + (1 − min_weight) · v / mean(v)``, the mean over the batch's real tokens, so the
    weights average exactly 1 over the real tokens and a position identical across the group
    (``v = 0``) gets the least, ``min_weight``. A batch where nothing varies gets 1 everywhere.
    GUESS: the variance of the token probability (the paper's statistic is an intra-group
    information measure), ``min_weight = 0`` (weights proportional to the variance). Shapes:
    ``ctx.sampling_logprobs, ctx.completion_mask [B, T]`` -> ``[B, T]``.
    """
    if not 0.0 <= min_weight <= 1.0:
        raise ValueError(f"tw_variance: min_weight must lie in [0, 1], got {min_weight}")
    mask = ctx.completion_mask.double()
    with torch.no_grad():
        p = ctx.sampling_logprobs.double().exp() * mask
        count = group_sum(mask, ctx.group_ids)
        mean = group_sum(p, ctx.group_ids) / count.clamp(min=1)
        variance = group_sum(mask * (p - mean) ** 2, ctx.group_ids) / count.clamp(min=1)
        variance = variance * mask
        scale = variance.sum() / mask.sum().clamp(min=1)
        if float(scale) <= 0.0:
            return mask.float()
        weights = (min_weight + (1.0 - min_weight) * variance / scale) * mask
    return weights.float()
