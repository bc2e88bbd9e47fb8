"""The zoo page is generated from the registries and must match the code; every component and
recipe says where it comes from."""

import re
from pathlib import Path

import pytest

from grpozoo import registry
from grpozoo.recipes import all_recipes
from grpozoo.reporting.zoo import KINDS, entry_ids, zoo_markdown

ZOO_PAGE = Path(__file__).parents[1] / "docs" / "zoo.md"


def test_the_zoo_page_is_up_to_date():
    assert ZOO_PAGE.read_text() == zoo_markdown(), "docs/zoo.md is stale: regenerate it with `grpozoo docs`"


@pytest.mark.parametrize(("kind", "name"), [(title, name) for title, reg, _ in KINDS for name in reg.names()])
def test_every_component_documents_its_source_and_shapes(kind, name):
    reg = next(reg for title, reg, _ in KINDS if title == kind)
    doc = reg.get(name).__doc__ or ""
    assert entry_ids(reg.get(name)) != "—" or re.search(r"\b(19|20)\d\d\b", doc), (
        f"{kind} {name!r}: the docstring names neither an ALGORITHMS.md entry nor a paper"
    )
    assert "[B" in doc or "scalar" in doc, f"{kind} {name!r}: the docstring gives no shapes"


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_every_recipe_cites_its_paper_and_names_registered_components(recipe):
    assert recipe.citation and recipe.changes and recipe.entry
    algo = recipe.config.get("algorithm", {})
    if "advantage" in algo:
        assert algo["advantage"]["name"] in registry.advantages
    if "loss" in algo:
        assert algo["loss"]["name"] in registry.losses
    for weight in algo.get("token_weights", []):
        assert weight["name"] in registry.token_weights
