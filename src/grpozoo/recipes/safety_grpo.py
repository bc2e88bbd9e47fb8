"""Multi-objective GRPO for safety: aspect scores combined by a weighted sum."""

from grpozoo.recipes import Recipe, register_recipe

SAFETY_GRPO = register_recipe(
    Recipe(
        name="safety_grpo",
        citation='Li et al. 2025, "Optimizing Safe and Aligned Language Generation: A Multi-Objective GRPO'
        ' Approach" (arXiv:2503.21819)',
        changes="reward = Σ_k w_k·r_k over aspects (helpfulness: the task's verifier, safety: rules or a "
        "reward-model head), equal weights (GUESS)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [
                {
                    "name": "multi_objective",
                    "params": {
                        "aspects": [
                            {"name": "task", "weight": 1.0, "label": "helpfulness"},
                            {"name": "safety_rules", "weight": 1.0, "label": "safety"},
                        ]
                    },
                }
            ],
        },
    )
)
