"""MDPO (on-policy): no clipping; a KL(π_θ‖π_old) proximity term weighted 1/t_k, t_k annealed as
1 − k/K, minimised over several optimiser steps per batch (the term is 0 on the first)."""

from grpozoo.recipes import Recipe, register_recipe

MDPO = register_recipe(
    Recipe(
        name="mdpo",
        citation='Tomar et al. 2020, "Mirror Descent Policy Optimization" (arXiv:2005.09814)',
        changes="unclipped −ρ·A plus (1/t_k)·KL(π_θ‖π_old) with t_k = 1 − k/K, 2 optimiser steps per batch",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "mdpo", "params": {"step_size": 1.0, "anneal": True}},
                "aggregation": "token_mean",
                "num_iterations": 2,
            }
        },
    )
)
