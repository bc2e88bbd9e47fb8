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
    counts = torch.zeros(n, dtype=torch.float64).scatter_add_(
        0, dense, torch.ones_like(dense, dtype=torch.float64)
    )
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


def group_sum(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Sum over each sample's group, broadcast to ``[B]`` (or to ``[B, T]`` for per-token ``values
    [B, T]``: at each position, the sum over the rows of the group)."""
    dense, n = _dense_ids(group_ids)
    sums = torch.zeros((n, *values.shape[1:]), dtype=torch.float64).index_add_(0, dense, values.double())
    return sums[dense].to(_float_dtype(values))


def _group_extreme(values: torch.Tensor, group_ids: torch.Tensor, reduce: str) -> torch.Tensor:
    dense, n = _dense_ids(group_ids)
    v = values.double()
    out = torch.zeros(n, dtype=torch.float64).scatter_reduce_(0, dense, v, reduce=reduce, include_self=False)
    return out[dense].to(_float_dtype(values))


def group_min(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Minimum of each sample's group, broadcast to ``[B]``."""
    return _group_extreme(values, group_ids, "amin")


def group_max(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Maximum of each sample's group, broadcast to ``[B]``."""
    return _group_extreme(values, group_ids, "amax")


def group_is_constant(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool: True where every member of the sample's group has the same value (this includes
    single-member groups); such groups carry no learning signal for a group-relative estimator."""
    return group_max(values, group_ids) == group_min(values, group_ids)


def group_weighted_mean(values: torch.Tensor, weights: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """``Σ_j w_j v_j / Σ_j w_j`` over each sample's group, broadcast to ``[B]``.

    A group whose weights sum to 0 gets its plain mean (equal weights), so the result is always finite.
    """
    w = weights.double()
    num = group_sum(w * values.double(), group_ids)
    den = group_sum(w, group_ids)
    plain = group_mean(values.double(), group_ids)
    out = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), plain)
    return out.to(_float_dtype(values))


def leave_one_out_mean(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """``mean_{j≠i} v_j`` over the other members of each sample's group (RLOO's baseline), ``[B]``.

    A single-member group has no other member; its value is the sample's own value, so
    ``v − leave_one_out_mean(v)`` is 0 there.
    """
    v = values.double()
    count = group_count(group_ids)
    others = (group_sum(v, group_ids) - v) / (count - 1).clamp(min=1)
    return torch.where(count > 1, others, v).to(_float_dtype(values))


def _sorted_within_groups(values: torch.Tensor, group_ids: torch.Tensor):
    """Sort ``values`` ascending within each group, ties kept in batch order (a stable sort).

    Returns ``order`` (batch indices in sorted order), the rank of each sample within its group
    (``[B]`` long, 0 = smallest), each sample's group size and the sorted position where its group
    starts.
    """
    dense, n = _dense_ids(group_ids)
    by_value = torch.sort(values.double(), stable=True).indices
    order = by_value[torch.sort(dense[by_value], stable=True).indices]
    counts = torch.zeros(n, dtype=torch.long).scatter_add_(0, dense, torch.ones_like(dense))
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty_like(dense)
    rank[order] = torch.arange(dense.numel()) - starts[dense[order]]
    return order, rank, counts[dense], starts[dense]


def group_rank(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Position ``[B]`` (long, 0 = smallest) of each sample in its group's ascending order.

    Ties are broken by batch position (the earlier row ranks lower), so ranks within a group are
    always the distinct integers ``0 … n−1``.
    """
    return _sorted_within_groups(values, group_ids)[1]


def group_quantile(values: torch.Tensor, group_ids: torch.Tensor, q: float) -> torch.Tensor:
    """The ``q``-quantile of each sample's group with linear interpolation between order statistics
    (as ``torch.quantile``), broadcast to ``[B]``."""
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"group_quantile: q={q} is not in [0, 1]")
    order, _, count, start = _sorted_within_groups(values, group_ids)
    sorted_values = values.double()[order]
    h = q * (count - 1).double()
    lo = h.floor().long()
    hi = h.ceil().long()
    low_value = sorted_values[start + lo]
    out = low_value + (h - lo.double()) * (sorted_values[start + hi] - low_value)
    return out.to(_float_dtype(values))


def group_median_pivot(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """``[B]`` bool marking exactly one row per group: the lower-median row, i.e. the member at rank
    ``(n − 1) // 2`` of the stable ascending order (the middle member of an odd group).

    Tie-safe: among equal values the earliest batch row ranks first, so a group always has exactly
    one pivot, chosen deterministically (``torch.median``'s index under ties is unspecified).
    """
    _, rank, count, _ = _sorted_within_groups(values, group_ids)
    return rank == (count - 1) // 2


def group_median(values: torch.Tensor, group_ids: torch.Tensor, lower: bool = False) -> torch.Tensor:
    """Median of each sample's group, broadcast to ``[B]``.

    An even-sized group gets the mean of its two middle values, or with ``lower`` the lower of the two
    (``torch.median``'s convention, and the value of the :func:`group_median_pivot` row).
    """
    if lower:
        order, rank, count, start = _sorted_within_groups(values, group_ids)
        return values.double()[order][start + (count - 1) // 2].to(_float_dtype(values))
    return group_quantile(values, group_ids, 0.5)


def group_abs_dev(values: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
    """Mean absolute deviation about the group mean, ``mean_j |v_j − mean_G v|``, broadcast to ``[B]``."""
    v = values.double()
    return group_mean((v - group_mean(v, group_ids)).abs(), group_ids).to(_float_dtype(values))


def group_mad(values: torch.Tensor, group_ids: torch.Tensor, lower: bool = False) -> torch.Tensor:
    """Median absolute deviation about the group median, ``median_j |v_j − median_G v|``, ``[B]``
    (``lower`` as in :func:`group_median`, applied to both medians)."""
    v = values.double()
    return group_median((v - group_median(v, group_ids, lower)).abs(), group_ids, lower).to(
        _float_dtype(values)
    )


def batch_whiten(values: torch.Tensor, eps: float = 1e-8, unbiased: bool = False) -> torch.Tensor:
    """``(v − mean_B v) / (std_B v + eps)`` over the whole batch (REINFORCE++'s global normalisation).

    ``unbiased`` selects Bessel's correction; a batch of one, or of equal values, gives exactly 0.
    """
    if values.numel() == 0:
        return values.clone()
    v = values.double()
    centred = v - v.mean()
    denom = max(v.numel() - 1, 1) if unbiased else v.numel()
    std = ((centred**2).sum() / denom).sqrt()
    return (centred / (std + eps)).to(_float_dtype(values))


def group_ids_from_keys(*keys: torch.Tensor) -> torch.Tensor:
    """Dense ids ``[B]`` (long, 0 … K−1) of the distinct tuples ``(keys[0][i], keys[1][i], …)``: a
    composite grouping such as (prompt, stratum). NaN keys count as one value."""
    stacked = torch.stack([torch.nan_to_num(k.double(), nan=float("inf")) for k in keys], dim=1)
    return torch.unique(stacked, dim=0, return_inverse=True)[1]
