"""An arena's definition: which recipes, which seeds, and the settings every run shares.

From the command line (``--recipes grpo,dr_grpo --task chain_sum --steps 20 --seeds 2 --set …``)
or a YAML file (``--config arena.yaml``; command-line flags win over the file)::

    recipes:                       # names, or entries with their own overrides
      - grpo
      - dr_grpo
      - {recipe: dapo, name: dapo-long, set: [rollout.max_new_tokens=48]}
    task: chain_sum
    model: smollm2-135m
    steps: 20
    seeds: 2                       # 2 seeds (0 and 1), or a list: [0, 7]
    set:                           # every run: KEY=VALUE strings, or a partial run configuration
      - rollout.group_size=8
      - train.threads=1
    parallel: 1                    # runs trained at once, each in its own process
    output: arenas/my-arena

Every run gets the same model, task (so the same train/held-out split), steps, evaluation and
generation budget; run k of every recipe gets ``train.seed = k``, so the same initial adapters,
sampling seed and data order. A recipe's own settings (e.g. MC-GRPO's 5 rollouts per prompt)
stay unless ``set`` overrides them; the report shows each run's budget.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from grpozoo import registry
from grpozoo.config import (
    ConfigError,
    RunConfig,
    deep_merge,
    load_yaml,
    merge_layers,
    parse_override,
    validate,
)
from grpozoo.registry import did_you_mean

# keys the arena sets itself, per run
RESERVED = {
    "output_dir": "the arena puts every run in DIR/runs/<name>-seed<k>; choose DIR with --output",
    "recipe": "the recipes come from --recipes (or `recipes:` in the arena file)",
    "train.seed": "the seeds come from --seeds (or `seeds:` in the arena file)",
}
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_.+-]+$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class EntryFile(_Strict):
    recipe: str
    name: str | None = None  # default: the recipe's name
    set: list[str] | dict[str, Any] = Field(default_factory=list)


class ArenaFile(_Strict):
    recipes: list[str | EntryFile] = Field(default_factory=list)
    task: str | None = None
    model: str | None = None
    steps: int | None = Field(None, gt=0)
    seeds: int | list[int] = 1
    set: list[str] | dict[str, Any] = Field(default_factory=list)
    parallel: int = Field(1, ge=1)
    output: str | None = None


@dataclass(frozen=True)
class Entry:
    """One competitor: a recipe with optional overrides of its own, under a unique name."""

    name: str
    recipe: str
    overrides: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ArenaRun:
    entry: Entry
    seed: int
    run_dir: Path
    cfg: RunConfig

    @property
    def label(self) -> str:
        return f"{self.entry.name}-seed{self.seed}"


@dataclass
class Arena:
    directory: Path
    entries: list[Entry]
    seeds: list[int]
    shared: dict[str, Any]  # the partial run configuration every run shares
    parallel: int = 1

    def runs(self) -> list[ArenaRun]:
        """Every entry × seed, seed-major (after the first round every recipe has a result), each
        with its fully resolved configuration."""
        return [self.run(entry, seed) for seed in self.seeds for entry in self.entries]

    def run(self, entry: Entry, seed: int) -> ArenaRun:
        from grpozoo.recipes import get_recipe

        run_dir = self.directory / "runs" / f"{entry.name}-seed{seed}"
        user = deep_merge(self.shared, entry.overrides)
        user = deep_merge(user, {"recipe": entry.recipe, "train": {"seed": seed}, "output_dir": str(run_dir)})
        try:
            cfg = validate(merge_layers(get_recipe(entry.recipe).config, user))
        except ConfigError as error:
            raise ConfigError(
                f"arena entry {entry.name!r} (recipe {entry.recipe!r}, seed {seed}): {error}"
            ) from None
        return ArenaRun(entry, seed, run_dir, cfg)

    def check(self) -> list[ArenaRun]:
        """Resolve every run and look up every component it names, so a typo fails before any
        training rather than when its run's turn comes."""
        runs = self.runs()
        for run in runs:
            a = run.cfg.algorithm
            try:
                registry.advantages.get(a.advantage.name)
                registry.losses.get(a.loss.name)
                registry.aggregations.get(a.aggregation)
                registry.kl_estimators.get(a.kl.estimator)
                registry.selectors.get(a.selector.name)
                for component in a.token_weights:
                    registry.token_weights.get(component.name)
            except KeyError as error:
                raise ConfigError(f"arena entry {run.entry.name!r}: {error}") from None
        return runs

    def definition(self) -> dict[str, Any]:
        """The arena as a YAML-ready mapping (written to DIR/arena.yaml)."""
        return {
            "recipes": [{"name": e.name, "recipe": e.recipe, "set": e.overrides} for e in self.entries],
            "seeds": list(self.seeds),
            "set": self.shared,
            "parallel": self.parallel,
        }


def _overrides(value: list[str] | dict[str, Any], where: str) -> dict[str, Any]:
    """``set`` as a nested mapping: a list of ``KEY=VALUE`` strings, or a partial run configuration."""
    if isinstance(value, dict):
        return dict(value)
    out: dict[str, Any] = {}
    for text in value:
        try:
            out = deep_merge(out, parse_override(text))
        except ConfigError as error:
            raise ConfigError(f"{where}: {error}") from None
    return out


def _check_reserved(overrides: dict[str, Any], where: str) -> None:
    for dotted, why in RESERVED.items():
        node: Any = overrides
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        if node is not None:
            raise ConfigError(f"{where} sets {dotted}={node!r}, which the arena sets itself: {why}")


def parse_seeds(value: int | list[int] | str) -> list[int]:
    """``3`` → ``[0, 1, 2]``; ``"0,7"`` or ``[0, 7]`` → ``[0, 7]``."""
    where = f"--seeds {value!r}"
    if isinstance(value, str):
        text = value.strip()
        if "," not in text:
            if not text.isdigit():
                raise ConfigError(
                    f"{where}: expected a number of seeds (3 means 0,1,2) or a list like 0,7,42"
                )
            value = int(text)
        else:
            try:
                value = [int(part) for part in text.split(",") if part.strip()]
            except ValueError:
                raise ConfigError(
                    f"{where}: every seed in a list must be an integer, e.g. --seeds 0,7,42"
                ) from None
    if isinstance(value, int):
        if value < 1:
            raise ConfigError(f"{where}: at least one seed is needed, e.g. --seeds 1")
        return list(range(value))
    if not value:
        raise ConfigError(f"{where}: at least one seed is needed, e.g. --seeds 0")
    if len(set(value)) != len(value):
        raise ConfigError(f"{where}: a seed is listed twice")
    return list(value)


def _entries(items: list[str | EntryFile]) -> list[Entry]:
    from grpozoo.recipes import get_recipe

    entries: list[Entry] = []
    for item in items:
        spec = EntryFile(recipe=item) if isinstance(item, str) else item
        name = spec.name or spec.recipe
        where = f"arena entry {name!r}"
        get_recipe(spec.recipe)  # an unknown name fails here, with "did you mean"
        if not NAME_PATTERN.match(name):
            raise ConfigError(
                f"{where}: a name may hold only letters, digits and _ . + - (it names a directory)"
            )
        if any(e.name == name for e in entries):
            raise ConfigError(
                f"{where} appears twice: give the second one its own name, e.g. "
                f"{{recipe: {spec.recipe}, name: {name}-2, set: [...]}}"
            )
        overrides = _overrides(spec.set, where)
        _check_reserved(overrides, where)
        entries.append(Entry(name, spec.recipe, overrides))
    return entries


_TYPE_TAG = re.compile(r"^(str|int|bool|EntryFile|list\[.*\]|dict\[.*\])$")


def load_arena_file(path: str | Path) -> ArenaFile:
    data = load_yaml(path)
    try:
        return ArenaFile.model_validate(data)
    except ValidationError as error:
        raise ConfigError(_explain(error, str(path))) from None


def _explain(error: ValidationError, path: str) -> str:
    """One line per wrong key, without pydantic's union branch names (``recipes.0.EntryFile.x``
    reads ``recipes.0.x``), and the alternatives of a union joined with "or"."""
    found: dict[tuple[Any, ...], list[ErrorDetails]] = {}
    for item in error.errors():
        loc = tuple(p for p in item["loc"] if isinstance(p, int) or not _TYPE_TAG.match(p))
        found.setdefault(loc, []).append(item)
    lines = []
    for loc, items in found.items():
        deeper = any(other[: len(loc)] == loc and len(other) > len(loc) for other in found)
        if deeper:
            continue  # e.g. "not a string" for an entry whose mapping has its own error below
        dotted = ".".join(str(p) for p in loc)
        item = items[0]
        if item["type"] == "extra_forbidden":
            key = str(loc[-1])
            valid = list(EntryFile.model_fields if loc[0] == "recipes" else ArenaFile.model_fields)
            lines.append(
                f"arena file {path!r}: unknown key {dotted!r}.{did_you_mean(key, valid)} "
                f"Valid keys: {', '.join(valid)}"
            )
        else:
            messages = " or ".join(dict.fromkeys(i["msg"] for i in items))
            lines.append(f"arena file {path!r}: {dotted} = {item.get('input')!r}: {messages}")
    return "\n".join(lines)


def default_directory(task: str, steps: int) -> Path:
    return Path("arenas") / f"{Path(task).stem}-{steps}steps"


def arena_from_args(
    config: str | Path | None = None,
    recipes: str | list[str] | None = None,
    task: str | None = None,
    model: str | None = None,
    steps: int | None = None,
    seeds: int | list[int] | str | None = None,
    overrides: list[str] | None = None,
    output: str | Path | None = None,
    parallel: int | None = None,
) -> Arena:
    """The arena of the command line's flags over the optional YAML file's values.

    ``recipes`` replaces the file's list; an entry of the file whose name is on it keeps its own
    overrides. ``overrides`` (``--set``) apply after the file's ``set``.
    """
    spec = load_arena_file(config) if config else ArenaFile()
    items: list[str | EntryFile] = list(spec.recipes)
    if recipes is not None:
        names = [r.strip() for r in recipes.split(",")] if isinstance(recipes, str) else list(recipes)
        names = [n for n in names if n]
        by_name = {(i if isinstance(i, str) else (i.name or i.recipe)): i for i in items}
        items = [by_name.get(n, n) for n in names]
    if not items:
        raise ConfigError(
            "an arena needs recipes: --recipes grpo,dr_grpo (or `recipes:` in the --config file)"
        )
    shared = _overrides(spec.set, "arena `set`")
    for text in overrides or []:
        shared = deep_merge(shared, parse_override(text))
    for key, value in (
        ("task.name", task or spec.task),
        ("model.name", model or spec.model),
        ("train.steps", steps or spec.steps),
    ):
        if value is not None:
            section, name = key.split(".")
            shared = deep_merge(shared, {section: {name: value}})
    _check_reserved(shared, "--set")
    defaults = RunConfig()
    task_name = shared.get("task", {}).get("name", defaults.task.name)
    total_steps = shared.get("train", {}).get("steps", defaults.train.steps)
    directory = Path(output or spec.output or default_directory(str(task_name), int(total_steps)))
    return Arena(
        directory=directory,
        entries=_entries(items),
        seeds=parse_seeds(seeds if seeds is not None else spec.seeds),
        shared=shared,
        parallel=parallel if parallel is not None else spec.parallel,
    )
