"""The zoo page (docs/zoo.md), rendered from the registries so that it cannot drift from the code."""

from __future__ import annotations

import inspect
import re
from typing import Any

from grpozoo import registry

# The component kinds, in pipeline order, with the leading arguments the pipeline passes.
KINDS = (
    ("Group filters", registry.group_filters, 1),
    ("Advantage estimators", registry.advantages, 2),
    ("Token weights", registry.token_weights, 0),
    ("Policy losses", registry.losses, 4),
    ("Aggregations", registry.aggregations, 3),
    ("KL estimators", registry.kl_estimators, 2),
    # built as cls(parameters, train.learning_rate, train.weight_decay, **params)
    ("Optimizers", registry.optimizers, 3),
)
# The first citation in a docstring: authors and year (``Yu et al. 2025``, ``Lin & Xu 2025``), then
# optionally its title in quotes or stars and its arXiv id.
CITATION = re.compile(
    r"\b(?P<authors>[A-Z][\w-]*(?:(?:, [A-Z][\w-]*)* (?:&|and) [A-Z][\w-]*)?(?: et al\.)?)"
    r" (?P<year>(?:19|20)\d\d)\b"
    r"(?:, (?:\"[^\"]+\"|\*[^*]+\*))?(?:,? \(?arXiv:(?P<arxiv>\d{4}\.\d{4,5}))?"
)
ARXIV_ID = re.compile(r"arXiv:(\d{4}\.\d{4,5})")


def summary(component: Any) -> str:
    """The first sentence of a component's docstring, on one line."""
    doc = inspect.getdoc(component) or ""
    first = " ".join(doc.split("\n\n")[0].split())
    return first.replace("|", "\\|")


def paper(component: Any) -> str:
    """The paper a component's docstring cites first, as ``Authors year``, linked to its arXiv page
    when the citation gives the id; "—" when the docstring cites no paper."""
    found = CITATION.search(" ".join((inspect.getdoc(component) or "").split()))
    if found is None:
        return "—"
    cited = f"{found['authors']} {found['year']}"
    return f"[{cited}](https://arxiv.org/abs/{found['arxiv']})" if found["arxiv"] else cited


def linked(citation: str) -> str:
    """``citation`` with every ``arXiv:ID`` turned into a link to the paper's arXiv page."""
    return ARXIV_ID.sub(r"[arXiv:\1](https://arxiv.org/abs/\1)", citation)


def parameters(component: Any, positional: int) -> str:
    """``name=default`` for every parameter a user can set."""
    params = list(inspect.signature(component).parameters.values())[positional:]
    shown = [
        f"`{p.name}={p.default!r}`"
        for p in params
        if p.name not in registry.PIPELINE_ARGUMENTS and p.kind is not p.VAR_KEYWORD
    ]
    return ", ".join(shown).replace("|", "\\|") or "—"


def recipe_components(config: dict[str, Any]) -> str:
    algo = config.get("algorithm", {})
    parts = []
    for group_filter in algo.get("group_filters", []):
        parts.append(f"filter `{group_filter['name']}`")
    if algo.get("guidance", {}).get("mode", "off") != "off":
        guided = algo["guidance"]
        parts.append(f"guidance `{guided['mode']}` ({guided.get('learn_with', 'hinted')})")
    if "advantage" in algo:
        parts.append(f"advantage `{algo['advantage']['name']}`")
    for weight in algo.get("token_weights", []):
        parts.append(f"weights `{weight['name']}`")
    if "loss" in algo:
        parts.append(f"loss `{algo['loss']['name']}`")
    if "aggregation" in algo:
        parts.append(f"aggregation `{algo['aggregation']}`")
    if algo.get("kl", {}).get("coef"):
        parts.append(f"KL {algo['kl']['coef']} ({algo['kl'].get('mode', 'loss')})")
    if "group_size" in config.get("rollout", {}):
        parts.append(f"G={config['rollout']['group_size']}")
    return ", ".join(parts)


def zoo_markdown() -> str:
    from grpozoo.recipes import all_recipes

    lines = [
        "# The zoo",
        "",
        "Every recipe and component grpozoo registers, with the paper it comes from. This page is",
        "generated from the registries by `grpozoo docs` (a test fails when it is out of date).",
        "How to write a component: [components.md](components.md).",
        "",
        "## Recipes",
        "",
        f"{len(all_recipes())} recipes; train one with `grpozoo train --recipe NAME`.",
        "",
        "| recipe | what it changes vs GRPO | components | paper |",
        "|---|---|---|---|",
    ]
    for recipe in all_recipes():
        cells = [
            f"`{recipe.name}`",
            recipe.changes,
            recipe_components(recipe.config),
            linked(recipe.citation),
        ]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    for title, reg, positional in KINDS:
        names = reg.names()
        lines += [
            "",
            f"## {title}",
            "",
            f"{len(names)} registered.",
            "",
            "| name | paper | what it does | parameters | module |",
            "|---|---|---|---|---|",
        ]
        for name in names:
            component = reg.get(name)
            module = component.__module__.removeprefix("grpozoo.")
            needs = sorted(reg.spec(name).needs)
            what = summary(component) + (f" *Needs: {', '.join(needs)}.*" if needs else "")
            lines.append(
                f"| `{name}` | {paper(component)} | {what} | {parameters(component, positional)} | `{module}` |"
            )
    return "\n".join(lines) + "\n"
