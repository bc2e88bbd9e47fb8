"""MC-GRPO: median baseline over G+1 rollouts, the median rollout (pivot) dropped."""

from grpozoo.recipes import Recipe, register_recipe

MC_GRPO = register_recipe(
    Recipe(
        name="mc_grpo",
        citation='Kim 2026, "MC-GRPO: Median-Centered Group Relative Policy Optimization for Small-Rollout'
        ' Reinforcement Learning" (arXiv:2601.22582)',
        changes="G+1 = 5 rollouts per prompt, baseline = group median, no std, the pivot rollout "
        "dropped so G = 4 learn",
        config={
            "algorithm": {
                "advantage": {"name": "mc_grpo", "params": {"scale": "none"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rollout": {"group_size": 5},
        },
    )
)
