"""Coefficient controllers updated once per step from the step's metrics, and schedules over the
run's steps (pure functions)."""

from __future__ import annotations

import math


def adaptive_kl_coef(coef: float, kl: float, target: float, horizon: int) -> float:
    """Adaptive KL coefficient (Ziegler et al. 2019, "Fine-Tuning Language Models from Human
    Preferences"): ``coef · (1 + clip(kl/target − 1, −0.2, 0.2) / horizon)``, so the coefficient
    grows while the measured KL is above the target and shrinks while below."""
    error = min(max(kl / target - 1.0, -0.2), 0.2)
    return coef * (1.0 + error / horizon)


def adaptive_entropy_coef(coef: float, entropy: float, target: float, rate: float) -> float:
    """Entropy-target controller: ``max(0, coef + rate·(target − entropy))`` — the bonus grows while
    the policy's mean token entropy is below the target and fades (to 0, never negative) above it."""
    return max(0.0, coef + rate * (target - entropy))


def scheduled_coef(
    step: int, total_steps: int, start: float, end: float, shape: str = "linear", warmup_fraction: float = 1.0
) -> float:
    """A coefficient on a schedule over training, as GRPO-D's dynamic KL weight (Liu et al. 2025,
    "OThink-MR1: Stimulating multimodal generalized reasoning capabilities via dynamic reinforcement
    learning", arXiv:2503.16081): small at first (explore), growing toward its maximum (exploit).

    With progress ``u = min(1, (step − 1) / ((total_steps − 1)·warmup_fraction))`` (``step`` 1-based, so
    the first step gets ``start`` and the last, or the end of the warm-up, ``end``), the coefficient is
    ``start + (end − start)·s(u)`` with ``s(u) = u`` (``"linear"``), ``(1 − cos πu)/2`` (``"cosine"``)
    or 1 (``"constant"``: always ``end``). Monotone in ``step`` (non-decreasing when ``start ≤ end``).
    """
    if shape == "constant":
        return end
    if not 0.0 < warmup_fraction <= 1.0:
        raise ValueError(f"scheduled_coef: warmup_fraction must be in (0, 1], got {warmup_fraction}")
    span = max(total_steps - 1, 1) * warmup_fraction
    u = min(1.0, max(0.0, (step - 1) / span))
    if shape == "linear":
        s = u
    elif shape == "cosine":
        s = (1.0 - math.cos(math.pi * u)) / 2.0
    else:
        raise ValueError(f"scheduled_coef: shape={shape!r} is not one of 'constant', 'linear', 'cosine'")
    return start + (end - start) * s
