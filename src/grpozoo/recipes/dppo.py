"""DPPO (baseline): a trust region on the sampled token's probability shift (binary total variation)
instead of ratio clipping.

The mask acts only once the policy has moved away from the one that sampled the batch, so the
recipe takes two optimiser steps per batch.
"""

from grpozoo.recipes import Recipe, register_recipe

DPPO = register_recipe(
    Recipe(
        name="dppo",
        citation='Qi et al. 2026, "Rethinking the Trust Region in LLM Reinforcement Learning"'
        " (arXiv:2602.04879)",
        changes="drop tokens whose probability moved > 0.2 in the advantage's direction instead of clipping "
        "ρ; 2 updates per batch",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "dppo", "params": {"delta": 0.2}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
                "num_iterations": 2,
            }
        },
    )
)
