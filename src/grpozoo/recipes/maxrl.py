"""MaxRL: the maximum-likelihood gradient, advantage divided by the group's pass rate."""

from grpozoo.recipes import Recipe, register_recipe

MAXRL = register_recipe(
    Recipe(
        name="maxrl",
        citation='Tajwar et al. 2026, "Maximum Likelihood Reinforcement Learning" (arXiv:2602.02710)',
        changes="advantage (r − mean)/mean instead of (r − mean)/std: gradient of log pass rate, so "
        "hard prompts weigh more",
        config={
            "algorithm": {
                "advantage": {"name": "maxrl", "params": {}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
