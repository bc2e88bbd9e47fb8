"""REINFORCE++-baseline: group-mean baseline, then batch whitening; KL in the reward."""

from grpozoo.recipes import Recipe, register_recipe

REINFORCE_PP_BASELINE = register_recipe(
    Recipe(
        name="reinforce_pp_baseline",
        citation='Hu 2025, "REINFORCE++: An Efficient RLHF Algorithm with Robustness to Both Prompt and'
        ' Reward Models" (arXiv:2501.03262)',
        changes="group mean subtracted, then scaled by the batch std of the centred rewards instead of"
        " each group's std; k1 KL folded into the reward (coef 0.01)",
        config={
            "algorithm": {
                "advantage": {"name": "reinforce_pp_baseline", "params": {}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.01, "estimator": "k1", "mode": "reward"},
            }
        },
    )
)
