"""LLDS: GRPO plus a penalty on the tokens whose log-prob fell, in completions whose
likelihood fell.

The penalty compares with the pre-update policy, so the recipe takes two optimiser steps per batch
(GUESS)."""

from grpozoo.recipes import Recipe, register_recipe

LLDS = register_recipe(
    Recipe(
        name="llds",
        citation='Deng et al. 2025, "On GRPO Collapse in Search-R1: The Lazy Likelihood-Displacement Death'
        ' Spiral" (arXiv:2512.04220)',
        changes="adds 0.1·1[ℓ_i < ℓ_i^old]·mean_t max(0, log π_old − log π) to the PPO-clip loss",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "llds", "params": {"eps_low": 0.2, "eps_high": 0.2, "coef": 0.1}},
                "aggregation": "sequence_mean",
                "num_iterations": 2,
            }
        },
    )
)
