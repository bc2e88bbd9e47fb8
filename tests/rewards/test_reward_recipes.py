"""The reward recipes train two steps on the tiny model with their own rewards (the recipe test in
tests/training replaces every recipe's rewards with the tiny model's, so it never runs these)."""

import math

import pytest
from training.test_trainer import make_trainer

from grpozoo.recipes import get_recipe
from grpozoo.training import fit

RECIPES = {
    "ttrl": "ttrl",
    "empo": "empo",
    "evol_rl": "evol_rl",
    "fapo": "fapo",
    "grpo_lambda": "grpo_lambda",
    "posterior_grpo": "posterior_grpo",
    "unlikeliness": "unlikeliness",
    "train_long_think_short": "train_long_think_short",
    "s_grpo": "s_grpo",
    "rl_struct": "json_structured",
    "otc": "otc",
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_two_steps_with_its_own_reward(tiny_overrides, recipe):
    # the recipe's own rewards, not the tiny model's task + digit_share
    overrides = [o for o in tiny_overrides if not o.startswith(("rewards=", "rollout.group_size="))]
    trainer = make_trainer(
        overrides,
        f"recipe={recipe}",
        "train.steps=2",
        "eval.at_start=false",
        "eval.at_end=false",
        "rollout.max_new_tokens=6",
    )
    assert [part.name for part in trainer.rollouts.rewards.parts] == [RECIPES[recipe]]
    assert "task" not in [r["name"] for r in get_recipe(recipe).config["rewards"]]
    summary = fit(trainer, show_progress=False)
    assert trainer.step == 2
    metrics = summary["metrics"]
    assert math.isfinite(metrics[f"reward/{RECIPES[recipe]}"])
    assert math.isfinite(metrics["grad_norm"]) or metrics.get("kept_fraction") == 0
