"""KL-Cov (baseline): the unclipped surrogate plus a KL-to-old penalty on the highest-covariance tokens.

The penalty |logp − old_logp| is 0 on the first pass over a batch, so the recipe takes two
optimiser steps per batch.
"""

from grpozoo.recipes import Recipe, register_recipe

KL_COV = register_recipe(
    Recipe(
        name="kl_cov",
        citation='Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning Language'
        ' Models" (arXiv:2505.22617)',
        changes="no clip; |logp − old_logp| penalty on the top 2e-3 tokens by logp/advantage covariance; 2 "
        "updates per batch",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "kl_cov", "params": {"kl_ratio": 2e-3, "kl_coef": 1.0}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
                "num_iterations": 2,
            }
        },
    )
)
