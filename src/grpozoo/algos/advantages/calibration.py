"""Calibration-aware advantages: the advantage is the gradient of a pairwise ranking surrogate of the
calibration AUC (right rollouts should be more confident than wrong ones of the same prompt).

Shapes: ``rewards [B]``, ``group_ids [B]``, ``ctx.sampling_logprobs / ctx.action_mask [B, T]``.
"""

from __future__ import annotations

import torch

from grpozoo.algos.advantages.reweighting import mean_logprob
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def pairwise_auc_advantage(
    confidence: torch.Tensor,
    correct: torch.Tensor,
    group_ids: torch.Tensor,
    min_gap: float = 0.0,
    usable: torch.Tensor | None = None,
) -> torch.Tensor:
    """The advantage defined by the gradient of the logistic AUC surrogate
    ``Σ_{(i right, j wrong) same group} log(1 + exp(−(c_i − c_j)))`` with respect to the confidences:

    - right ``i``: ``A_i = Σ_{j wrong} σ(c_j − c_i) / n_pairs(i)``,
    - wrong ``j``: ``A_j = −Σ_{i right} σ(c_j − c_i) / n_pairs(j)``,

    each sum over the pairs of the same group that are kept: a pair is dropped when
    ``|c_i − c_j| < min_gap``, or when either member is not ``usable`` ([B] bool; e.g. truncated rows).
    ``n_pairs`` is the number of kept pairs of the row; a row without one (a group of one class) gets 0.
    Shapes: ``confidence, correct, group_ids [B]`` (``correct`` bool) -> ``[B]`` float64.
    """
    c = confidence.double()
    usable = torch.ones_like(correct) if usable is None else usable.bool()
    same = group_ids.unsqueeze(0) == group_ids.unsqueeze(1)
    # pairs[i, j]: i right, j wrong, same group, both usable, gap large enough
    pairs = same & (correct & usable).unsqueeze(1) & (~correct & usable).unsqueeze(0)
    gap = c.unsqueeze(1) - c.unsqueeze(0)  # c_i − c_j
    if min_gap > 0:
        pairs &= gap.abs() >= min_gap
    push = torch.sigmoid(-gap) * pairs  # σ(c_j − c_i) on kept pairs
    right = push.sum(dim=1) / pairs.sum(dim=1).clamp(min=1)
    wrong = push.sum(dim=0) / pairs.sum(dim=0).clamp(min=1)
    return torch.where(correct, right, -wrong)


@advantages.register("capo_calibration")
def capo_calibration_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    threshold: float = 0.5,
    min_gap: float = 0.0,
    drop_truncated: bool = False,
) -> torch.Tensor:
    """CAPO's calibration-aware advantage (Wang et al. 2026, "Calibration-Aware Policy Optimization for
    Reasoning LLMs", arXiv:2604.12632).

    Each rollout's confidence is its mean sampling log-prob over the model's own tokens
    (``c_i = mean_t log π(y_t)``, the negative log-perplexity; the confidence ``grpozoo eval`` scores
    with ``calibration_auc_within_prompt``, :func:`grpozoo.evaluation.metrics.calibration_auc_within_groups`),
    detached. Within each group, every (right ``i``, wrong ``j``) pair enters the logistic surrogate of
    that AUC, ``log(1 + exp(−(c_i − c_j)))``, whose gradient gives the advantage
    (:func:`pairwise_auc_advantage`): a right rollout gets ``+mean_j σ(c_j − c_i)`` (more when it is
    less confident), a wrong one ``−mean_i σ(c_j − c_i)`` (more negative when it is over-confident).
    A group of one class gets 0. The usual clipped policy gradient then uses these advantages.

    A rollout is right when ``reward ≥ threshold``. GUESS: the normalisation by the number of pairs of
    each rollout, and the noise masking, which the abstract names but does not define: ``min_gap``
    drops pairs whose confidence gap is below it (0: none dropped), ``drop_truncated`` drops the
    truncated rollouts from every pair (they get 0).
    Shapes: ``rewards, group_ids [B]``, ``ctx.sampling_logprobs, ctx.action_mask [B, T]`` -> ``[B]``.
    """
    confidence = mean_logprob(ctx.sampling_logprobs, ctx.action_mask)
    usable = ~ctx.truncated.bool() if drop_truncated else None
    out = pairwise_auc_advantage(confidence, rewards >= threshold, group_ids, min_gap, usable)
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
