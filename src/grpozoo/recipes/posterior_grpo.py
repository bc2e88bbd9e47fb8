"""Posterior-GRPO: a process reward counted only when the outcome is right."""

from grpozoo.recipes import Recipe, register_recipe

POSTERIOR_GRPO = register_recipe(
    Recipe(
        name="posterior_grpo",
        citation='Fan et al. 2025, "Posterior-GRPO: Rewarding Reasoning Processes in Code Generation"'
        " (arXiv:2508.05170)",
        changes="outcome + 0.5·process score for right answers only (arithmetic-consistency scorer by default, GUESS)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "posterior_grpo"}],
        },
    )
)
