"""Entropy control by a REINFORCE regulariser toward a temperature-adjusted policy (AEPO): instead of
an entropy bonus, the loss adds a REINFORCE term on samples of ``π^{1/T}``, with ``T > 1`` while the
policy's entropy is below a target (raising it) and ``T < 1`` while above (lowering it).

Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]``; ``ctx.entropies,
ctx.sampling_logprobs [B, T]``, ``ctx.rewards [B]``. Returns ``(loss [B, T], diagnostics)``, 0 on padding.
"""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.losses import Statistics, require_field
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.masked import keep_real, mask_outputs, masked_mean
from grpozoo.registry import losses
from grpozoo.rollouts import Rollouts


def aepo_temperature(entropy: torch.Tensor, target: float, t_high: float, t_low: float) -> torch.Tensor:
    """AEPO's temperature regulation as a bang-bang switch: ``t_high`` (> 1, a flatter target
    distribution) while the mean token ``entropy`` is below ``target``, else ``t_low`` (< 1, sharper).
    Shapes: scalar -> scalar."""
    return torch.where(entropy < target, torch.as_tensor(t_high, dtype=torch.float64),
                       torch.as_tensor(t_low, dtype=torch.float64))


def tempered_token_weights(
    logprobs: torch.Tensor, entropies: torch.Tensor, temperature: torch.Tensor | float, max_log_weight: float
) -> torch.Tensor:
    """Per-token importance weight from the sampling policy ``π`` to its tempered ``π^{1/T}``, to first
    order in ``1/T − 1``: ``π^{1/T}(y)/π(y) = exp((1/T − 1)·log π(y) − log Σ_v π(v)^{1/T})``, and
    ``log Σ_v π(v)^{1/T} ≈ (1/T − 1)·E_π[log π] = −(1/T − 1)·H``, so
    ``w = exp((1/T − 1)·(log π(y) + H))``, its log clamped to ``±max_log_weight``. ``T > 1`` favours
    tokens rarer than typical (``log π(y) < −H``), ``T < 1`` likelier ones. No gradient.
    Shapes: ``logprobs, entropies [B, T]`` -> ``[B, T]``."""
    inverse = 1.0 / torch.as_tensor(temperature, dtype=torch.float64) - 1.0
    log_w = inverse * (logprobs.detach().double() + entropies.detach().double())
    return torch.exp(log_w.clamp(-max_log_weight, max_log_weight))


def _aepo_statistics(
    advantages: torch.Tensor, mask: torch.Tensor, ctx: Rollouts, *, target_entropy: float, t_high: float,
    t_low: float, **_: object,
) -> Statistics:
    """The whole batch's mean sampling entropy and the temperature it sets (scalars)."""
    entropy = masked_mean(require_field(ctx.entropies, "entropies", "aepo").double(), mask)
    return {"aepo_entropy": entropy, "aepo_temperature": aepo_temperature(entropy, target_entropy, t_high, t_low)}


@losses.register("aepo", needs={"entropies"}, statistics=_aepo_statistics)
def aepo_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    coef: float = 0.1,
    target_entropy: float = 0.5,
    t_high: float = 1.2,
    t_low: float = 0.8,
    reinforce_on: Literal["positive", "reward"] = "positive",
    max_log_weight: float = 2.0,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
    statistics: Statistics | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """AEPO (Wang et al. 2025, "Arbitrary Entropy Policy Optimization: Entropy Is Controllable in
    Reinforcement Fine-tuning", arXiv:2510.08141): ``L = L_GRPO + coef·L_REINFORCE``.

    ``L_GRPO`` is the PPO clipped surrogate (``eps_low``, ``eps_high``). ``L_REINFORCE =
    −E_{y∼π^{1/T}}[r(y)·log π(y)]`` pulls the policy toward its tempered version ``π^{1/T}``, whose
    temperature is regulated against ``target_entropy``: ``t_high`` while the batch's mean sampling
    entropy (``ctx.entropies``, over the whole step's batch) is below it, ``t_low`` otherwise
    (:func:`aepo_temperature`). ``r`` is 1 on rollouts with a positive reward and 0 elsewhere
    (``reinforce_on="positive"``) or the reward itself (``"reward"``). ``coef = 0`` is GRPO's loss.
    GUESS: the bang-bang controller and its ``t_high = 1.2`` / ``t_low = 0.8``, ``coef = 0.1``,
    ``target_entropy = 0.5`` (nats per token), positive samples only.
    What differs: the paper draws extra samples from ``π^{1/T}``; here the REINFORCE term reuses the
    batch's own samples, importance-weighted per token to ``π^{1/T}`` by the first-order weight of
    :func:`tempered_token_weights` (from ``ctx.sampling_logprobs`` and ``ctx.entropies``; the exact
    normaliser needs the whole distribution), log-weight clamped at ``max_log_weight``.
    Diagnostics: ``aepo_temperature``, ``aepo_entropy`` (the batch's), ``aepo_weight``.
    Shapes: ``logp, old_logp, mask [B, T]``, ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    """
    loss, diagnostics = ppo_clip_loss(logp, old_logp, advantages, mask, ctx, eps_low=eps_low, eps_high=eps_high)
    if coef == 0.0:
        return loss, diagnostics
    if reinforce_on not in ("positive", "reward"):
        raise ValueError(f"aepo: reinforce_on={reinforce_on!r} is not one of 'positive', 'reward'")
    stats = statistics if statistics is not None else _aepo_statistics(
        advantages, mask, ctx, target_entropy=target_entropy, t_high=t_high, t_low=t_low)
    temperature = stats["aepo_temperature"]
    entropies = require_field(ctx.entropies, "entropies", "aepo")
    weight = keep_real(tempered_token_weights(ctx.sampling_logprobs, entropies, temperature, max_log_weight), mask)
    rewards = require_field(ctx.rewards, "rewards", "aepo").double()
    scale = (rewards > 0).double() if reinforce_on == "positive" else rewards
    reinforce = -(weight * scale.unsqueeze(1)).to(logp.dtype) * logp
    diagnostics.update(
        aepo_temperature=temperature.expand(1, 1),
        aepo_entropy=stats["aepo_entropy"].expand(1, 1),
        aepo_weight=weight,
    )
    return mask_outputs(loss + coef * reinforce, diagnostics, mask)
