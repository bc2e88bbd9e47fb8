"""Per-token KL estimators to a reference policy (Schulman 2020, "Approximating KL divergence").

``(logp [B,T], ref_logp [B,T]) -> [B,T]`` estimates of KL(π‖π_ref) from samples of π.
"""

from __future__ import annotations

import torch

from grpozoo.algos.masked import LOG_RATIO_CLAMP
from grpozoo.registry import kl_estimators


@kl_estimators.register("k1")
def kl_k1(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k1 = log π − log π_ref (Schulman 2020): unbiased, high variance, can be negative.
    Shapes: ``[B, T]``."""
    return logp - ref_logp


@kl_estimators.register("k2")
def kl_k2(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k2 = ½ (log π − log π_ref)² (Schulman 2020): biased, low variance, non-negative.
    Shapes: ``[B, T]``."""
    return 0.5 * (logp - ref_logp) ** 2


@kl_estimators.register("k3")
def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """k3 = exp(log π_ref − log π) − (log π_ref − log π) − 1 (Schulman 2020; GRPO): unbiased and
    non-negative. Shapes: ``[B, T]``."""
    delta = (ref_logp - logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP)
    # expm1 avoids cancellation for tiny |delta|; the clamp removes the last rounding below 0
    return (torch.expm1(delta) - delta).clamp_min(0.0)


@kl_estimators.register("abs")
def kl_abs(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """|log π − log π_ref|: non-negative, biased; a plain distance penalty (as in verl, Sheng et al.
    2024). Shapes: ``[B, T]``."""
    return (logp - ref_logp).abs()


def straight_through(value: torch.Tensor, logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """``value`` in the forward pass, k2's gradient in the backward pass.

    ∇k2 = (log π − log π_ref)·∇log π, whose expectation under π is the exact gradient of KL(π‖π_ref);
    k3's own gradient is biased. Shapes: ``[B, T]``.
    """
    k2 = kl_k2(logp, ref_logp)
    return value.detach() + k2 - k2.detach()


def kl_to_go(kl: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ_{s ≥ t} kl[s]·mask[s] for every token t: the KL still to come in the sequence, which is what
    a per-token KL penalty folded into the reward (REINFORCE++) subtracts from the return of token t.
    Shapes: ``[B, T]`` -> ``[B, T]`` (0 on padding)."""
    masked = kl * mask
    return masked.flip(-1).cumsum(-1).flip(-1) * mask
