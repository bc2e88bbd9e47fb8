"""Recipes: named compositions of components, one small module per paper.

A recipe is data: a partial run configuration (mostly the ``algorithm`` section) plus the citation
of its paper and one line on what it changes relative to GRPO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from grpozoo.registry import recipes


@dataclass(frozen=True)
class Recipe:
    name: str
    citation: str  # authors year, "title" (arXiv:id), e.g. 'Hu 2025, "REINFORCE++: ..." (arXiv:2501.03262)'
    changes: str  # one line: what it changes relative to GRPO
    config: dict[str, Any] = field(default_factory=dict)  # partial RunConfig


def register_recipe(recipe: Recipe) -> Recipe:
    recipes.register(recipe.name)(recipe)
    return recipe


def get_recipe(name: str) -> Recipe:
    return recipes.get(name)


def all_recipes() -> list[Recipe]:
    return [recipes.get(name) for name in recipes.names()]


def _register_all() -> None:
    """Import every recipe module in this package; each registers its recipes."""
    import importlib
    import pkgutil

    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


_register_all()
