"""RLUF: a P[Love] reward model fitted on user reactions, mixed with the task's reward."""

from grpozoo.recipes import Recipe, register_recipe

RLUF = register_recipe(
    Recipe(
        name="rluf",
        citation='Han et al. 2025, "Reinforcement Learning from User Feedback" (arXiv:2505.14946)',
        changes="reward = task + 0.5·P[Love], a logistic head on frozen base features fitted from a labelled "
        "feedback file (set rewards' user_feedback params.data; weight GUESS)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "task", "weight": 1.0}, {"name": "user_feedback", "weight": 0.5}],
        },
    )
)
