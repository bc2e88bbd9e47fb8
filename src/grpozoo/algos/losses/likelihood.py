"""Likelihood (supervised-style) objectives: maximum likelihood on correct completions and, for
incorrect ones, on an implicit negative policy (NFT: Chen et al. 2025, "Bridging Supervised Learning and
Reinforcement Learning in Math Reasoning", arXiv:2505.18116)."""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.groups import group_mean
from grpozoo.algos.losses import sequence_advantages
from grpozoo.algos.masked import mask_outputs, on_tokens, token_log_ratio
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts

NFT_MAX_LOG_RATIO = 10.0  # the authors cap the token ratio at exp(10)


def _neg_log_clamped(x: torch.Tensor, low: float) -> torch.Tensor:
    """``−log max(x, low)`` in value, with gradient ``−∇x / max(x, low)``: the authors'
    ``−log(clamp_preserve_grad(x, low))``, written so no cancellation can produce ``log 0``."""
    floor = x.detach().clamp(min=low)
    return -(torch.log(floor) + (x - x.detach()) / floor)


@losses.register("nft", whole_groups=True)
def nft_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    prompt_weight: Literal["one_minus_rate", "sqrt_odds", "none"] = "one_minus_rate",
    negative_weight: float = 1.0,
    clamp_positive: float = 0.0,
    clamp_negative: float = 1.0,
    rate_clamp: float = 0.02,
    correct_threshold: float = 0.5,
    drop_uniform_groups: bool = True,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """NFT, negative-aware fine-tuning (Chen et al. 2025, "Bridging Supervised Learning and
    Reinforcement Learning in Math Reasoning", arXiv:2505.18116).

    Token ratio ``R = exp(logp − old_logp)`` (capped at exp(10)); ``r̂`` = the group's correct rate,
    clamped to ``[rate_clamp, 1 − rate_clamp]``. Per token:

    - correct completion: ``−log max_pg(R, clamp_positive)`` (likelihood of the positive policy);
    - incorrect completion: ``−negative_weight · log max_pg((1 − r̂R)/(1 − r̂), clamp_negative)``,
      the likelihood of the *implicit negative policy* ``(π_old − r̂π)/(1 − r̂)`` built from the same model;

    ``max_pg`` clamps the value from below and keeps the gradient of its argument. Each prompt is
    weighted by ``prompt_weight``: ``"one_minus_rate"`` ``(1 − r̂)`` (option 1, equals Dr.GRPO
    on-policy), ``"sqrt_odds"`` ``sqrt((1 − r̂)/r̂)`` (option 2, equals GRPO with population std
    on-policy), or ``"none"``. At ``R = 1``, ``r̂ = 0.25`` with ``"sqrt_odds"`` the gradient on
    logp is ``−√3`` for correct tokens and ``+1/√3`` for incorrect ones: GRPO's binary advantages.

    ``negative_weight = 0`` gives RFT (positives only). Defaults follow the authors' 7B script
    (option 1, clamp_negative = 1, clamp_positive = 0). The authors sum over tokens and divide by
    a constant: use aggregation ``constant_normalizer``.

    GUESS: a completion is correct when ``ctx.rewards ≥ correct_threshold`` (0.5; the code reads a
    0/1 accuracy). ``drop_uniform_groups`` (all correct / all wrong → 0) mirrors the authors'
    dynamic filtering of such groups, without which the clamped ``r̂`` would still push them.
    Shapes: ``logp, old_logp, mask [B, T]`` -> ``[B, T]``; ``advantages`` is unused (labels come
    from the rewards; its sign stands in when ``ctx.rewards`` is missing). Needs whole groups.
    """
    if ctx.rewards is None:  # no rewards in the batch: the sign of the sequence advantage labels it
        correct = (sequence_advantages(advantages, mask) > 0).to(logp.dtype)
    else:
        correct = (ctx.rewards.to(logp.device) >= correct_threshold).to(logp.dtype)
    rate = group_mean(correct.cpu(), ctx.group_ids.cpu()).to(logp.device)  # group reductions run on CPU
    mixed = (rate > 0) & (rate < 1)
    rate = rate.clamp(rate_clamp, 1.0 - rate_clamp)

    ratio = torch.exp(token_log_ratio(logp, old_logp, mask).clamp(max=NFT_MAX_LOG_RATIO))
    r = rate.unsqueeze(1)
    positive = _neg_log_clamped(ratio, max(clamp_positive, 1e-30))
    implicit_negative = (1.0 - r * ratio) / (1.0 - r)
    negative = _neg_log_clamped(implicit_negative, max(abs(clamp_negative), 1e-8))
    c = correct.unsqueeze(1)
    per_token = c * positive + (1.0 - c) * negative_weight * negative

    if prompt_weight == "one_minus_rate":
        weight = 1.0 - rate
    elif prompt_weight == "sqrt_odds":
        weight = ((1.0 - rate) / rate).sqrt()
    elif prompt_weight == "none":
        weight = torch.ones_like(rate)
    else:
        raise ValueError(
            f"nft: prompt_weight={prompt_weight!r} is not 'one_minus_rate', 'sqrt_odds' or 'none'"
        )
    if drop_uniform_groups:
        weight = torch.where(mixed, weight, torch.zeros_like(weight))
    diagnostics = {"ratio": ratio, "correct_rate": on_tokens(rate, mask)}
    return mask_outputs(weight.unsqueeze(1) * per_token, diagnostics, mask)
