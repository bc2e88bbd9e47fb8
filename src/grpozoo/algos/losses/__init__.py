"""Policy losses, one module per family: ``(logp [B,T], old_logp [B,T], advantages [B] or [B,T],
mask [B,T], ctx: Rollouts, **params) -> (per-token loss [B,T], per-token diagnostics {name: [B,T]})``.

A loss that needs statistics over the batch (means, quantiles, maxima, a random pick of tokens)
is two-phase: its registration names a ``statistics`` function (and/or ``policy_statistics``, for
statistics of the current policy's log-probs), which the trainer runs once over the whole step's
batch; the loss then receives them, cut to each micro-batch's rows, as its ``statistics`` keyword.
Called directly without them, the loss takes them over the batch it is given.
See docs/components.md and :class:`grpozoo.registry.LossSpec`.

Importing this package imports every module in it, which registers its losses.
"""

import importlib
import inspect
import pkgutil
from typing import Any, TypeVar

import torch

from grpozoo import registry
from grpozoo.algos.masked import row_mean
from grpozoo.rollouts import Rollouts, required

T = TypeVar("T")
Statistics = dict[str, torch.Tensor]  # a two-phase loss's whole-batch statistics (see LossSpec)


def broadcast_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sequence advantages ``[B]`` become ``[B, 1]``; token advantages ``[B, T]`` pass through."""
    return advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages


def sequence_advantages(advantages: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``[B]`` advantages pass through; token advantages ``[B, T]`` become their row's masked mean."""
    return advantages if advantages.dim() == 1 else row_mean(advantages, mask)


def require_field(value: T | None, field: str, loss: str) -> T:
    """``value``, the batch's ``ctx.<field>``; a clear error naming the loss when the batch lacks it."""
    return required(value, f"ctx.{field}", f"policy loss {loss!r}")


def batch_statistics(
    name: str,
    params: dict[str, Any],
    advantages: torch.Tensor,
    mask: torch.Tensor,
    ctx: Rollouts,
    logp: torch.Tensor | None = None,
    old_logp: torch.Tensor | None = None,
) -> Statistics:
    """The statistics the two-phase loss ``name`` takes over the whole batch ``ctx`` (``mask [B, T]``;
    see :class:`grpozoo.registry.LossSpec`), its ``params`` completed by their defaults; empty for a
    loss without statistics. ``logp`` / ``old_logp`` ``[B, T]``, the current and the old policy's
    log-probs, are read only by a loss registered with ``policy_statistics``."""
    spec = registry.losses.spec(name)
    signature = inspect.signature(registry.losses.get(name)).parameters.values()
    defaults = {p.name: p.default for p in signature if p.default is not p.empty}
    params = {k: v for k, v in {**defaults, **params}.items() if k not in registry.PIPELINE_ARGUMENTS}
    values: Statistics = {}
    if spec.statistics is not None:
        values.update(spec.statistics(advantages, mask, ctx, **params))
    if spec.policy_statistics is not None:
        if logp is None or old_logp is None:
            raise ValueError(f"policy loss {name!r} reads the current policy's logp and old_logp: pass both")
        values.update(spec.policy_statistics(logp, old_logp, advantages, mask, ctx, **params))
    return values


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
