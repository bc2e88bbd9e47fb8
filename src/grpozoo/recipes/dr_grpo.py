"""Dr.GRPO: GRPO without its length and difficulty biases."""

from grpozoo.recipes import Recipe, register_recipe

DR_GRPO = register_recipe(
    Recipe(
        name="dr_grpo",
        citation='Liu et al. 2025, "Understanding R1-Zero-Like Training: A Critical Perspective"'
        " (arXiv:2503.20783)",
        changes="no division by the group's reward std; the token-sum is divided by a constant "
        "(the generation budget), not by each completion's length",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "none"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "constant_normalizer",
            }
        },
    )
)
