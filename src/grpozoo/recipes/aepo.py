"""AEPO: entropy held near a target by a REINFORCE regulariser toward a temperature-adjusted policy."""

from grpozoo.recipes import Recipe, register_recipe

AEPO = register_recipe(
    Recipe(
        name="aepo",
        citation='Wang et al. 2025, "Arbitrary Entropy Policy Optimization: Entropy Is Controllable in '
        'Reinforcement Fine-tuning" (arXiv:2510.08141)',
        changes="adds 0.1·REINFORCE toward π^{1/T} on positive samples, T = 1.2 while the batch entropy is "
        "below the target 0.5, else 0.8",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "aepo", "params": {"coef": 0.1, "target_entropy": 0.5, "t_high": 1.2,
                                                    "t_low": 0.8}},
                "aggregation": "token_mean",
            }
        },
    )
)
