"""Clipped importance-ratio surrogates (the PPO family)."""

from __future__ import annotations

import torch

from grpozoo.algos.losses import broadcast_advantages
from grpozoo.registry import losses


@losses.register("ppo_clip")
def ppo_clip_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: object = None,
    eps_low: float = 0.2,
    eps_high: float = 0.2,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate with separate low/high epsilons (Schulman et al. 2017; GRPO; DAPO clip-higher).

    ``loss = −min(ρ·A, clip(ρ, 1−eps_low, 1+eps_high)·A)`` with ``ρ = exp(logp − old_logp)``.
    Shapes: ``logp, old_logp, mask [B, T]``; ``advantages [B]`` or ``[B, T]`` -> ``[B, T]``.
    """
    adv = broadcast_advantages(advantages, logp)
    log_ratio = (logp - old_logp).clamp(-20.0, 20.0)  # keeps exp finite on wild log-probs
    ratio = torch.exp(log_ratio)
    clipped = ratio.clamp(1.0 - eps_low, 1.0 + eps_high)
    loss = -torch.minimum(ratio * adv, clipped * adv)
    with torch.no_grad():
        clipped_low = (ratio < 1.0 - eps_low) & (adv < 0)
        clipped_high = (ratio > 1.0 + eps_high) & (adv > 0)
        diagnostics = {
            "clip_fraction": (clipped_low | clipped_high).float(),
            "clip_fraction_low": clipped_low.float(),
            "clip_fraction_high": clipped_high.float(),
        }
    return loss, diagnostics
