"""POWER-DL: a reference-free, length-weighted preference loss on the best and worst completion of
a group, with labels softened toward the policy's own preference."""

from grpozoo.recipes import Recipe, register_recipe

POWER_DL = register_recipe(
    Recipe(
        name="power_dl",
        citation='Rashidinejad & Tian 2024, "Sail into the Headwind: Alignment via Robust Rewards and Dynamic'
        ' Labels against Reward Hacking" (arXiv:2412.09544)',
        changes="best-vs-worst pair per group with a Bradley-Terry loss on length-normalised log-probs "
        "(weighted entropy, no reference) and dynamic soft labels instead of advantages; mean over prompts",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "power_dl", "params": {"beta": 2.0, "label_rate": 0.1}},
                "aggregation": "per_prompt_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
