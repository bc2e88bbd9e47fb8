"""The arena's report: its runs read back from disk and handed to the comparison report."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from grpozoo.arena.spec import Arena
from grpozoo.reporting.comparison import ReportMeta, write_comparison_report
from grpozoo.reporting.runs import RunData


def collect(arena: Arena) -> tuple[dict[str, list[RunData]], list[str]]:
    """Each competitor's runs that have logged at least one step, and the labels of those that
    have not (yet)."""
    groups: dict[str, list[RunData]] = {e.name: [] for e in arena.entries}
    missing = []
    for run in arena.runs():
        data = RunData.read(run.run_dir, name=run.entry.name, seed=run.seed)
        if data.metrics:
            groups[run.entry.name].append(data)
        else:
            missing.append(run.label)
        if data.metrics and data.steps_done < run.cfg.train.steps:
            missing.append(f"{run.label} (steps {data.steps_done + 1}–{run.cfg.train.steps})")
    return groups, missing


def write_report(arena: Arena) -> dict[str, Any]:
    """``report.html``, ``summary.md``, ``summary.csv`` and ``plots/`` in the arena directory."""
    groups, missing = collect(arena)
    first = arena.runs()[0].cfg
    e, r = first.eval, first.rollout
    settings = {
        "task": f"{first.task.name} ({first.task.train_size} training prompts, {first.task.eval_size} held out)",
        "model": f"{first.model.name}"
        + (f" (LoRA r={first.model.lora.r})" if first.model.lora.enabled else " (full fine-tuning)"),
        "training steps": str(first.train.steps),
        "seeds": ", ".join(str(s) for s in arena.seeds),
        "generation budget per step": f"{r.prompts_per_step} prompts × {r.group_size} samples, at most "
        f"{r.max_new_tokens} new tokens each, temperature {r.temperature:g}",
        "held-out evaluation": f"{first.task.eval_size} prompts × {e.samples} samples at temperature "
        f"{e.temperature:g} (seed {e.seed}), before and after training",
        "learning rate": f"{first.train.learning_rate:g} ({first.train.lr_scheduler})",
        "shared overrides": _overrides_text(arena.shared) or "none",
    }
    budgets = {
        f"{c.rollout.prompts_per_step}×{c.rollout.group_size}×{c.rollout.max_new_tokens}"
        for c in (run.cfg for run in arena.runs())
    }
    if len(budgets) > 1:
        settings["note"] = (
            "the generation budget differs between recipes (a recipe's own setting, e.g. its "
            "group size): see the Speed table"
        )
    meta = ReportMeta(
        title=f"grpozoo arena: {', '.join(e.name for e in arena.entries)} on {Path(first.task.name).stem}",
        directory=arena.directory,
        settings=settings,
        missing=missing,
        recipes={e.name: e.recipe for e in arena.entries},
        descriptions={e.name: _description(e) for e in arena.entries},
    )
    return write_comparison_report(groups, meta)


def _overrides_text(shared: dict[str, Any], prefix: str = "") -> str:
    parts = []
    for key, value in shared.items():
        if isinstance(value, dict):
            inner = _overrides_text(value, f"{prefix}{key}.")
            if inner:
                parts.append(inner)
        elif f"{prefix}{key}" not in ("task.name", "model.name", "train.steps"):
            parts.append(f"{prefix}{key}={value}")
    return ", ".join(parts)


def _description(entry) -> str:
    from grpozoo.recipes import get_recipe

    recipe = get_recipe(entry.recipe)
    own = f" This competitor also sets {_overrides_text(entry.overrides)}." if entry.overrides else ""
    return f"What it changes relative to GRPO: {recipe.changes}. Paper: {recipe.citation}.{own}"
