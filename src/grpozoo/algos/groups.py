"""Segment reductions over ``group_ids``: the group statistics every advantage estimator uses.

Shapes: ``values [B]``, ``group_ids [B]`` (long, any labels); results are broadcast back to ``[B]``.
"""

from __future__ import annotations

import torch


def _dense_ids(group_ids: torch.Tensor) -> tuple[torch.Tensor, int]:
    _, dense = torch.unique(group_ids, return_inverse=True)
    return dense, int(dense.max().item()) + 1 if dense.numel() else 0


def group_count(group_ids: torch.Tensor) -> torch.Tensor:
    """Size of each sample's group, broadcast to ``[B]``."""
    dense, n = _dense_ids(group_ids)
    counts = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, torch.ones_like(dense, dtype=torch.float64))
    return counts[dense]


def _float_dtype(values: torch.Tensor) -> torch.dtype:
    return values.dtype if values.is_floating_point() else torch.float32


def group_mean(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mean of each sample's group, broadcast to ``[B]``."""
    dense, n = _dense_ids(group_ids)
    v = values.double()
    sums = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, v)
    counts = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, torch.ones_like(v))
    return (sums / counts)[dense].to(_float_dtype(values))


def group_std(values: torch.Tensor, group_ids: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Standard deviation of each sample's group, broadcast to ``[B]``.

    With ``unbiased`` (Bessel's correction, as ``torch.std``) a single-member group has std 0.
    """
    dense, n = _dense_ids(group_ids)
    v = values.double()
    centred = v - group_mean(v, group_ids)
    sq = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, centred**2)
    counts = torch.zeros(n, dtype=torch.float64).scatter_add_(0, dense, torch.ones_like(v))
    denom = (counts - 1).clamp(min=1) if unbiased else counts
    return (sq / denom).sqrt()[dense].to(_float_dtype(values))
