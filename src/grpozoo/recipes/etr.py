"""ETR: elastic per-sample clip ranges, wider for large |A| and for groups with high reward variance."""

from grpozoo.recipes import Recipe, register_recipe

ETR = register_recipe(
    Recipe(
        name="etr",
        citation='Zhang et al. 2026, "ETR: Outcome-Guided Elastic Trust Regions for Policy Optimization"'
        " (arXiv:2601.03723)",
        changes="per-sample clip range ε·m(|A_i|)·g(σ_q): wider for confident samples and informative groups",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "etr", "params": {"eps_low": 0.2, "eps_high": 0.2, "adv_coef": 1.0}},
                "aggregation": "token_mean",
            }
        },
    )
)
