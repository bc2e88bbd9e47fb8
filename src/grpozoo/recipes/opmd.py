"""OPMD (as REC reads Kimi k1.5's online policy mirror descent): REINFORCE plus a k2
regulariser to the pre-update policy.

The k2 term is inert on the first pass over a batch, so the recipe takes two optimiser steps per
batch (GUESS)."""

from grpozoo.recipes import Recipe, register_recipe

OPMD = register_recipe(
    Recipe(
        name="opmd",
        citation='Yao et al. 2025, "Group-Relative REINFORCE Is Secretly an Off-Policy Algorithm:'
        ' Demystifying Some Myths About GRPO and Its Friends" (arXiv:2509.24203)',
        changes="REINFORCE (no ratio, no clip) plus τ·(log π − log π_old)² with τ = 0.1",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "none"}},
                "loss": {"name": "opmd", "params": {"tau": 0.1}},
                "aggregation": "token_mean",
                "num_iterations": 2,
            }
        },
    )
)
