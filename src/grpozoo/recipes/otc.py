"""OTC: correctness times a factor that peaks at the optimal number of tool calls."""

from grpozoo.recipes import Recipe, register_recipe

OTC = register_recipe(
    Recipe(
        name="otc",
        citation='Wang et al. 2025, "OTC: Optimal Tool Calls via Reinforcement Learning" (arXiv:2504.14870)',
        changes="right answers scaled by cos(π/2·|m−n|/(m+n+1)), m tool calls, n the fewest among the group's right answers",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "otc"}],
        },
    )
)
