"""EMPO: label-free RL rewarding each answer by the frequency of its semantic cluster."""

from grpozoo.recipes import Recipe, register_recipe

EMPO = register_recipe(
    Recipe(
        name="empo",
        citation='Zhang et al. 2025, "Right Question is Already Half the Answer: Fully Unsupervised LLM'
        ' Reasoning Incentivization" (arXiv:2504.05812)',
        changes="reward = share of the group giving an equivalent answer (minimises semantic entropy; no labels read)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "empo"}],
        },
    )
)
