"""MinPRO: each token's clipped term weighted by the smallest token ratio of its prefix.

On-policy every ratio is 1 and MinPRO is GRPO, so the recipe takes two optimiser steps per batch.
"""

from grpozoo.recipes import Recipe, register_recipe

MINPRO = register_recipe(
    Recipe(
        name="minpro",
        citation='Lei et al. 2026, "A Step Back: Prefix Importance Ratio Stabilizes Policy Optimization"'
        " (arXiv:2601.22718)",
        changes="token term × sg(min of the earlier tokens' ratios), damping tokens after a sharp drop; 2 "
        "updates per batch",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "minpro", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "num_iterations": 2,
            }
        },
    )
)
