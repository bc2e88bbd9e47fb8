"""Policy losses, one module per family: ``(logp [B,T], old_logp [B,T], advantages [B] or [B,T],
mask [B,T], ctx, **params) -> (per-token loss [B,T], per-token diagnostics {name: [B,T]})``.
See docs/components.md.

Importing this package imports every module in it, which registers its losses.
"""

import importlib
import pkgutil

import torch


def broadcast_advantages(advantages: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Sequence advantages ``[B]`` become ``[B, 1]``; token advantages ``[B, T]`` pass through."""
    return advantages.unsqueeze(-1) if advantages.dim() == 1 else advantages


for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
