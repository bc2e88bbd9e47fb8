"""CISPO (baseline, MiniMax-M1): clip the detached importance weight instead of the update, so no token's
gradient is dropped.
"""

from grpozoo.recipes import Recipe, register_recipe

CISPO = register_recipe(
    Recipe(
        name="cispo",
        citation='MiniMax 2025, "MiniMax-M1: Scaling Test-Time Compute Efficiently with Lightning Attention"'
        " (arXiv:2506.13585)",
        changes="REINFORCE with a clipped, detached importance weight sg(clip(ρ, 0, 5))·A·logp: no token is "
        "dropped",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "cispo", "params": {"eps_low": 1.0, "eps_high": 4.0}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
