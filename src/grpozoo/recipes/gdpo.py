"""GDPO: each reward part normalised within its group, summed, then whitened over the batch."""

from grpozoo.recipes import Recipe, register_recipe

GDPO = register_recipe(
    Recipe(
        name="gdpo",
        citation='Liu et al. 2026, "GDPO: Group reward-Decoupled Normalization Policy Optimization for'
        ' Multi-reward RL Optimization" (arXiv:2601.05242)',
        changes="reward parts normalised separately within the group before summing (then batch "
        "whitening) instead of normalising their sum",
        config={
            "algorithm": {
                "advantage": {"name": "gdpo", "params": {}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
