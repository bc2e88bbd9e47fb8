"""GRPO with truncated importance sampling between the generator and the learner."""

from grpozoo.recipes import Recipe, register_recipe

GRPO_TIS = register_recipe(
    Recipe(
        name="grpo_tis",
        citation='Yao et al. 2025, "Your Efficient RL Framework Secretly Brings You Off-Policy RL Training"'
        " (blog post)",
        changes="multiplies each token's loss by min(π_learner/π_sampler, 2) to correct sampler/learner mismatch",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [
                    {"name": "rollout_correction", "params": {"mode": "token_tis", "cap": 2.0}}
                ],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
