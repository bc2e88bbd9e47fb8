"""Masked tensor helpers shared by the policy losses, the KL estimators and the entropy statistics.

Shapes: ``values, mask [B, T]`` (``mask`` 1 on real completion tokens, 0 on padding). Every helper
here ignores padding: a NaN or inf there never reaches a value on a real token, and what it returns
on padding is exactly 0.
"""

from __future__ import annotations

import torch

LOG_RATIO_CLAMP = (
    20.0  # |log ρ| is clamped here: exp(±20) stays finite in float32, far outside any clip range
)


def keep_real(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``values`` on real tokens, exactly 0 on padding (a NaN/inf there cannot leak). ``[B, T]``."""
    return torch.where(mask > 0, values, 0.0)


def token_log_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``log ρ = logp − old_logp`` clamped to ``±LOG_RATIO_CLAMP`` (so ``exp`` stays finite on wild
    log-probs), 0 on padding. ``[B, T]``."""
    return keep_real((logp - old_logp).clamp(-LOG_RATIO_CLAMP, LOG_RATIO_CLAMP), mask)


def token_ratio(logp: torch.Tensor, old_logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``ρ = exp(logp − old_logp)`` per token (log-ratio clamped as :func:`token_log_ratio`); 1 on padding."""
    return torch.exp(token_log_ratio(logp, old_logp, mask))


def row_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of each row over its real tokens, ``[B, T]`` -> ``[B]``; 0 for a row with none."""
    return keep_real(values, mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` over every real token of the batch, ``[B, T]`` -> scalar (0 when there is none)."""
    return keep_real(values, mask).sum() / (mask > 0).sum().clamp(min=1)


def on_tokens(per_row: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """A per-row value ``[B]`` put on every real token of its row, 0 on padding. ``[B, T]``."""
    return keep_real(per_row.unsqueeze(1).expand(mask.shape), mask)


def mask_outputs(
    loss: torch.Tensor, diagnostics: dict[str, torch.Tensor], mask: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """A loss's return value: ``loss [B, T]`` and every diagnostic (detached, in the loss's dtype,
    broadcast to ``[B, T]`` from ``[B, 1]`` or a scalar) kept on real tokens, 0 on padding."""
    real = mask > 0
    return torch.where(real, loss, 0.0), {
        name: torch.where(real, value.detach().to(loss.dtype), 0.0).expand_as(loss)
        for name, value in diagnostics.items()
    }
