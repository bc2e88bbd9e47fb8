"""Advantage estimators, one module per family: ``(rewards [B], group_ids [B], ctx, **params)
-> advantages [B] or [B, T]`` or an :class:`AdvantageOutput`. See docs/components.md.

Importing this package imports every module in it, which registers its estimators.
"""

import importlib
import pkgutil
from dataclasses import dataclass, field

import torch


@dataclass
class AdvantageOutput:
    """What an estimator returns when it does more than give advantages: ``keep [B]`` (bool) drops
    rows before learning (False = dropped); ``extras`` are per-row ``[B]`` tensors stored in
    ``ctx.extras`` for later components."""

    advantages: torch.Tensor  # [B] or [B, T]
    keep: torch.Tensor | None = None
    extras: dict[str, torch.Tensor] = field(default_factory=dict)


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
