"""OPO: exact on-policy training with the length-weighted optimal reward baseline."""

from grpozoo.recipes import Recipe, register_recipe

OPO = register_recipe(
    Recipe(
        name="opo",
        citation='Hao et al. 2025, "On-Policy RL with Optimal Reward Baseline" (arXiv:2505.23585)',
        changes="baseline = length-weighted group mean reward, no std division; one exact on-policy "
        "REINFORCE step per batch, log-probs summed per sequence",
        config={
            "algorithm": {
                "advantage": {"name": "opo", "params": {}},
                "loss": {"name": "reinforce", "params": {}},
                "aggregation": "sequence_mean_token_sum",
                "num_iterations": 1,
            }
        },
    )
)
