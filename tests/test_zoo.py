"""The zoo page is generated from the registries and must match the code; every component and
recipe cites its paper itself, and nothing on the page points to a document outside the repository."""

import re
from pathlib import Path

import pytest

from grpozoo import registry
from grpozoo.recipes import all_recipes
from grpozoo.reporting.zoo import KINDS, linked, paper, zoo_markdown

ZOO_PAGE = Path(__file__).parents[1] / "docs" / "zoo.md"
# authors year, "title" (arXiv:id or another source), e.g. 'Hu 2025, "REINFORCE++: ..." (arXiv:2501.03262)'
RECIPE_CITATION = re.compile(r'(?P<authors>.+) (?P<year>(?:19|20)\d\d), "(?P<title>[^"]+)" '
                             r"\((?P<source>[^()]+)\)")


@pytest.fixture(scope="module")
def page():
    return zoo_markdown()


def test_the_zoo_page_is_up_to_date(page):
    assert ZOO_PAGE.read_text() == page, "docs/zoo.md is stale: regenerate it with `grpozoo docs`"


def test_the_zoo_page_refers_to_no_document_outside_the_repository(page):
    named = set(re.findall(r"[\w./-]+\.md\b", page))
    assert named and all((ZOO_PAGE.parent / name).exists() for name in named), named
    assert not re.findall(r"\b(?:[AB]\d{1,2}|P0)\b", page), "entry ids of a document the repository does not contain"


@pytest.mark.parametrize(("kind", "name"), [(title, name) for title, reg, _ in KINDS for name in reg.names()])
def test_every_component_cites_its_paper_and_documents_its_shapes(kind, name):
    reg = next(reg for title, reg, _ in KINDS if title == kind)
    doc = reg.get(name).__doc__ or ""
    assert paper(reg.get(name)) != "—", f"{kind} {name!r}: the docstring cites no paper (authors and year)"
    assert "[B" in doc or "scalar" in doc, f"{kind} {name!r}: the docstring gives no shapes"


def test_paper_reads_authors_year_and_arxiv_id_of_the_first_citation():
    def cited(doc):
        def component():
            pass

        component.__doc__ = doc
        return paper(component)

    assert cited('X (Yu et al. 2025, "DAPO: An\n    Open-Source System", arXiv:2503.14476).') == (
        "[Yu et al. 2025](https://arxiv.org/abs/2503.14476)"
    )
    assert cited("Mean (GRPO, Shao et al. 2024; Tran, Yao & Yu 2025).") == "Shao et al. 2024"
    assert cited("Tree (Tran, Yao & Yu 2025, *Title*).") == "Tran, Yao & Yu 2025"
    assert cited("Plain REINFORCE (Williams 1992) for 2 epochs; see arXiv:2501.03262.") == "Williams 1992"
    assert cited("Median-centred advantage, no citation.") == "—"


@pytest.mark.parametrize("recipe", all_recipes(), ids=lambda r: r.name)
def test_every_recipe_cites_its_paper_and_names_registered_components(recipe, page):
    assert recipe.changes
    assert RECIPE_CITATION.fullmatch(recipe.citation), (
        f"recipe {recipe.name!r}: citation {recipe.citation!r} is not 'Authors year, \"Title\" (source)'"
    )
    assert f"| `{recipe.name}` |" in page and linked(recipe.citation) in page
    algo = recipe.config.get("algorithm", {})
    if "advantage" in algo:
        assert algo["advantage"]["name"] in registry.advantages
    if "loss" in algo:
        assert algo["loss"]["name"] in registry.losses
    for weight in algo.get("token_weights", []):
        assert weight["name"] in registry.token_weights
