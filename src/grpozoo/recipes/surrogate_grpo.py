"""Format and length as surrogate rewards: RL without ground-truth answers."""

from grpozoo.recipes import Recipe, register_recipe

SURROGATE_GRPO = register_recipe(
    Recipe(
        name="surrogate_grpo",
        citation='Xin et al. 2025, "Surrogate Signals from Format and Length: Reinforcement Learning for'
        ' Solving Mathematical Problems without Ground Truth Answers" (arXiv:2505.19439)',
        changes="no answer key: format reward (<think> then \\boxed{}), plus a rise-and-fall length reward "
        "after 30% of training (GUESS switch and shape)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "surrogate"}],
        },
    )
)
