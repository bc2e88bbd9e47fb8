"""ReMax: REINFORCE with the reward of a greedy completion as the baseline."""

from grpozoo.recipes import Recipe, register_recipe

REMAX = register_recipe(
    Recipe(
        name="remax",
        citation='Li et al. 2023, "ReMax: A Simple, Effective, and Efficient Reinforcement Learning Method'
        ' for Aligning Large Language Models" (arXiv:2310.10505)',
        changes="one sampled completion per prompt, baseline = reward of one extra greedy completion; "
        "plain REINFORCE on the whole completion",
        config={
            "algorithm": {
                "advantage": {"name": "remax", "params": {}},
                "loss": {"name": "reinforce", "params": {}},
                "aggregation": "sequence_mean_token_sum",
            },
            "rollout": {"group_size": 1},
        },
    )
)
