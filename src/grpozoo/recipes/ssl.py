"""SSL: tiered sweet-spot rewards in place of a binary verdict."""

from grpozoo.recipes import Recipe, register_recipe

SSL = register_recipe(
    Recipe(
        name="ssl",
        citation='Wu et al. 2026, "SSL: Sweet Spot Learning for Differentiated Guidance in Agentic Optimization"'
        " (arXiv:2601.22491)",
        changes="reward tiers {0, .25, .5, 1} by the answer's distance to the target instead of 0/1 (GUESS tiers)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "ssl"}],
        },
    )
)
