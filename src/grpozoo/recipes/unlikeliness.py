"""Unlikeliness reward: right answers the policy found unlikely are rewarded more, and more
PPO epochs per batch (the paper's second mitigation; GUESS: 2)."""

from grpozoo.recipes import Recipe, register_recipe

UNLIKELINESS = register_recipe(
    Recipe(
        name="unlikeliness",
        citation='He et al. 2025, "Rewarding the Unlikely: Lifting GRPO Beyond Distribution Sharpening"'
        " (arXiv:2506.02355)",
        changes="right answers scaled by 1 − 0.25·rank/G (rank 0 = least likely in the group); two PPO epochs per batch",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "num_iterations": 2,
            },
            "rewards": [{"name": "unlikeliness"}],
        },
    )
)
