"""SSPO: a subsentence-level importance ratio, between GRPO's token ratio and GSPO's sequence
ratio, with a clip range scaled by the subsentence's entropy.
"""

from grpozoo.recipes import Recipe, register_recipe

SSPO = register_recipe(
    Recipe(
        name="sspo",
        citation='Yang et al. 2025, "SSPO: Subsentence-level Policy Optimization" (arXiv:2511.04256)',
        changes="geometric-mean ratio per subsentence (split at punctuation), clip range scaled by "
        "subsentence entropy",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "sspo", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
