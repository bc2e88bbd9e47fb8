"""Pass@k training: the analytic advantage of the group's expected pass@k reward."""

from grpozoo.recipes import Recipe, register_recipe

PASS_AT_K = register_recipe(
    Recipe(
        name="pass_at_k",
        citation='Chen et al. 2025, "Pass@k Training for Adaptively Balancing Exploration and Exploitation'
        ' of Large Reasoning Models" (arXiv:2508.10751)',
        changes="advantage of the expected pass@k of a random k-subset (here k=2) instead of each "
        "sample's pass@1 reward",
        config={
            "algorithm": {
                "advantage": {"name": "pass_at_k", "params": {"k": 2}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
