"""The recipes whose change is their reward train two steps on the tiny model with their own
rewards (the recipe test in tests/training replaces every recipe's rewards with the tiny model's)."""

import json
import math

import pytest
from training.test_trainer import make_trainer

from grpozoo.recipes import get_recipe
from grpozoo.training import fit

# recipe -> the reward parts it trains with
RECIPES = {
    "ssl": ["ssl"],
    "safety_grpo": ["multi_objective"],
    "surrogate_grpo": ["surrogate"],
    "grpo_care": ["grpo_care"],
    "pref_grpo": ["pref_grpo"],
    "ada_grpo": ["ada_grpo"],
    "rluf": ["task", "user_feedback"],
}


@pytest.mark.parametrize("recipe", sorted(RECIPES))
def test_recipe_trains_two_steps_with_its_own_reward(tiny_overrides, tiny_model_dir, tmp_path, recipe):
    overrides = [o for o in tiny_overrides if not o.startswith(("rewards=", "rollout.group_size="))]
    if recipe == "rluf":  # P[Love] needs its feedback file
        data = tmp_path / "feedback.jsonl"
        rows = [{"prompt": "q", "completion": "Thanks! <3", "label": 1}, {"prompt": "q", "completion": "no", "label": 0}]
        data.write_text("\n".join(json.dumps(r) for r in rows))
        overrides.append(
            f"rewards=[{{name: task, weight: 1.0}}, {{name: user_feedback, weight: 0.5, params: {{data: '{data}'}}}}]"
        )
    if recipe == "pref_grpo":  # the policy's base weights judge every pair: a short rubric keeps it quick
        overrides.append(
            "rewards=[{name: pref_grpo, params: {rubric: 'Q {prompt} A {first} B {second} Better:', max_new_tokens: 2}}]"
        )
    trainer = make_trainer(
        overrides, f"recipe={recipe}", "train.steps=2", "eval.at_start=false", "eval.at_end=false",
        "rollout.max_new_tokens=6",
    )
    assert [part.name for part in trainer.rollouts.rewards.parts] == RECIPES[recipe]
    assert "task" not in [r["name"] for r in get_recipe(recipe).config["rewards"]] or recipe == "rluf"
    summary = fit(trainer, show_progress=False)
    assert trainer.step == 2
    metrics = summary["metrics"]
    for name in RECIPES[recipe]:
        assert math.isfinite(metrics[f"reward/{name}"])
    assert math.isfinite(metrics["grad_norm"]) or metrics.get("kept_fraction") == 0


def test_rluf_without_a_feedback_file_fails_at_start_up(tiny_overrides):
    from grpozoo.errors import ConfigError

    overrides = [o for o in tiny_overrides if not o.startswith("rewards=")]
    with pytest.raises(ConfigError, match="needs its feedback file"):
        make_trainer(overrides, "recipe=rluf", "train.steps=1")
