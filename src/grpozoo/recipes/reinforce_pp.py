"""REINFORCE++: global batch whitening and a k1 KL penalty folded into the reward."""

from grpozoo.recipes import Recipe, register_recipe

REINFORCE_PP = register_recipe(
    Recipe(
        name="reinforce_pp",
        citation='Hu 2025, "REINFORCE++: An Efficient RLHF Algorithm with Robustness to Both Prompt and'
        ' Reward Models" (arXiv:2501.03262)',
        changes="rewards whitened over the whole batch instead of per group; k1 KL to the reference "
        "folded into the reward (coef 0.01)",
        config={
            "algorithm": {
                "advantage": {"name": "reinforce_pp", "params": {}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.01, "estimator": "k1", "mode": "reward"},
            }
        },
    )
)
