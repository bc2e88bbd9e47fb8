"""Coefficient controllers updated once per step from the step's metrics (pure functions)."""

from __future__ import annotations


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
