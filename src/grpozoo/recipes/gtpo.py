"""GTPO (trajectory-based): conflict tokens protected (×2 in positive, ×0 in negative
completions), high-entropy completions filtered, no KL."""

from grpozoo.recipes import Recipe, register_recipe

GTPO = register_recipe(
    Recipe(
        name="gtpo",
        citation='Simoni et al. 2025, "GTPO: Trajectory-Based Policy Optimization in Large Language Models"'
        " (arXiv:2508.03772)",
        changes="conflict-token weights (×2 positive, ×0 negative), A=0 above mean entropy 0.7 else A−0.1·H̄, no KL",
        config={
            "algorithm": {
                "advantage": {"name": "gtpo", "params": {"threshold": 0.7, "coef": 0.1}},
                "token_weights": [{"name": "gtpo_conflict", "params": {"weight": 2.0}}],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "sequence_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
