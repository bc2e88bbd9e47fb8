"""ADORA: each prompt's advantages scaled down when its rollouts show it is temporarily disadvantageous."""

from grpozoo.recipes import Recipe, register_recipe

ADORA = register_recipe(
    Recipe(
        name="adora",
        citation='Ren et al. 2026, "ADORA: Training Reasoning Models with Dynamic Advantage Estimation on '
        'Reinforcement Learning" (arXiv:2602.10019)',
        changes="GRPO advantages ×0.1 for prompts whose right rollouts are not longer on average than their "
        "wrong ones (pluggable predicate)",
        config={
            "algorithm": {
                "advantage": {"name": "adora", "params": {"predicate": "correct_longer", "factor": 0.1}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
