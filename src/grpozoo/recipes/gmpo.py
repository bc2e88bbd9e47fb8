"""GMPO (baseline): the geometric mean of the token-level rewards ρ_t·A, with sign-aware token
clipping in log space.
"""

from grpozoo.recipes import Recipe, register_recipe

GMPO = register_recipe(
    Recipe(
        name="gmpo",
        citation='Zhao et al. 2025, "Geometric-Mean Policy Optimization" (arXiv:2507.20673)',
        changes="geometric instead of arithmetic mean of token ratios per sequence, token log-ratios clipped "
        "to ±0.4",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "gmpo", "params": {"eps_low": 0.4, "eps_high": 0.4}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
