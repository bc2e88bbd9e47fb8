"""GSPO: one geometric-mean importance ratio per sequence, clipped at the sequence level."""

from grpozoo.recipes import Recipe, register_recipe

GSPO = register_recipe(
    Recipe(
        name="gspo",
        citation='Zheng et al. 2025, "Group Sequence Policy Optimization" (arXiv:2507.18071)',
        changes="sequence ratio exp(mean log ρ) clipped at the sequence level (eps 3e-4/4e-4), mean over "
        "sequences",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "gspo", "params": {"eps_low": 3e-4, "eps_high": 4e-4}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
