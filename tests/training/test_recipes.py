"""Every registered recipe trains for two steps on the tiny model."""

import math

import pytest
from training.test_group_filters import write_hint_task
from training.test_trainer import make_trainer

from grpozoo.recipes import all_recipes, get_recipe
from grpozoo.training import fit


@pytest.mark.parametrize("recipe", [r.name for r in all_recipes()])
def test_every_recipe_trains_two_steps(tiny_overrides, recipe, tmp_path):
    # the recipe's own group size applies (MC-GRPO's G+1, single-stream SPO's 1)
    overrides = [o for o in tiny_overrides if not o.startswith("rollout.group_size=")]
    guidance = get_recipe(recipe).config.get("algorithm", {}).get("guidance", {}).get("mode", "off")
    if guidance != "off":  # hinted recipes need a task with hints: a small JSONL file written here
        overrides.append(f"task.name={write_hint_task(tmp_path, solutions=guidance == 'solution_prefix')}")
    trainer = make_trainer(
        overrides,
        f"recipe={recipe}",
        "train.steps=2",
        "eval.at_start=false",
        "eval.at_end=false",
        "rollout.max_new_tokens=6",
    )
    summary = fit(trainer, show_progress=False)
    assert trainer.step == 2
    metrics = summary["metrics"]
    assert math.isfinite(metrics["grad_norm"])
    if metrics["kept_fraction"] > 0:  # e.g. DAPO's overlong filter may drop every truncated row
        assert math.isfinite(metrics["loss"]) and math.isfinite(metrics["entropy"])
