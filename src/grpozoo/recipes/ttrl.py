"""TTRL: label-free RL, the group's majority answer is the pseudo-label."""

from grpozoo.recipes import Recipe, register_recipe

TTRL = register_recipe(
    Recipe(
        name="ttrl",
        citation='Zuo et al. 2025, "TTRL: Test-Time Reinforcement Learning" (arXiv:2504.16084)',
        changes="reward 1 for agreeing with the group's majority answer instead of the gold (no labels read)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "ttrl"}],
        },
    )
)
