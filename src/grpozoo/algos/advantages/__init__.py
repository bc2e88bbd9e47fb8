"""Advantage estimators, one module per family: ``(rewards [B], group_ids [B], ctx, **params)
-> advantages [B] or [B, T]`` (or ``(advantages, keep [B])`` to drop rows). See docs/components.md.

Importing this package imports every module in it, which registers its estimators.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")
