"""BNPO: advantages normalised by a Beta density fitted to the batch's pass rates."""

from grpozoo.recipes import Recipe, register_recipe

BNPO = register_recipe(
    Recipe(
        name="bnpo",
        citation='Xiao et al. 2025, "BNPO: Beta Normalization Policy Optimization" (arXiv:2506.02864)',
        changes="advantage (r − p)/Beta_pdf(p; α, β) with α, β fitted to the prompts' pass rates each "
        "step, instead of (r − p)/std",
        config={
            "algorithm": {
                "advantage": {"name": "bnpo", "params": {}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
