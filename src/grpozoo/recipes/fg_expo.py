"""FG-ExPO, its Gaussian curriculum: GRPO on prompts drawn with weight exp(−(acc − 0.5)²/(2σ²))
from each prompt's latest accuracy.

The paper's adaptive KL coefficient (a sigmoid of the batch accuracy) is not part of this recipe.
"""

from grpozoo.recipes import Recipe, register_recipe

FG_EXPO = register_recipe(
    Recipe(
        name="fg_expo",
        citation='Lin et al. 2026, "FG-ExPO: Frontier-Guided Exploration-Prioritized Policy Optimization via'
        ' Adaptive KL and Gaussian Curriculum" (arXiv:2605.11403)',
        changes="prompts drawn ∝ exp(−(acc_q − 0.5)²/(2·0.2²)) from each prompt's latest accuracy "
        "(selector fg_expo)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "fg_expo", "params": {"sigma": 0.2}},
            }
        },
    )
)
