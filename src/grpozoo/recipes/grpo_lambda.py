"""GRPO-λ: a length penalty only for the groups of the batch that are mostly right."""

from grpozoo.recipes import Recipe, register_recipe

GRPO_LAMBDA = register_recipe(
    Recipe(
        name="grpo_lambda",
        citation='Dai et al. 2025, "Stable Reinforcement Learning for Efficient Reasoning" (arXiv:2505.18086)',
        changes="the top-λ groups by correctness ratio get a Kimi-1.5 length reward, the rest plain 0/1 (λ = 0.2, GUESS)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "grpo_lambda"}],
        },
    )
)
