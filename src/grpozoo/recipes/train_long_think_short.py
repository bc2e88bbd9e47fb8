"""Train Long, Think Short: a token budget that shrinks over training, in the reward."""

from grpozoo.recipes import Recipe, register_recipe

TRAIN_LONG_THINK_SHORT = register_recipe(
    Recipe(
        name="train_long_think_short",
        citation='Hammoud et al. 2025, "Train Long, Think Short: Curriculum Learning for Efficient'
        ' Reasoning" (arXiv:2508.08940)',
        changes="correctness + 0.5·length-within-budget + 0.25·format, the budget decaying 256 → 64 tokens (GUESS)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "train_long_think_short"}],
        },
    )
)
