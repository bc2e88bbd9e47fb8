"""POISE: a probe on the policy's own hidden states predicts each rollout's reward; the baseline of
rollout i is the prediction for another rollout of its prompt (cross-rollout), so two rollouts per
prompt suffice."""

from grpozoo.recipes import Recipe, register_recipe

POISE = register_recipe(
    Recipe(
        name="poise",
        citation='Choi, Lim et al. 2026, "Your Language Model is Its Own Critic: Reinforcement Learning with '
        'Value Estimation from Actor\'s Internal States" (arXiv:2605.07579)',
        changes="baseline = a linear probe's predicted reward (detached hidden states + entropy statistics, "
        "trained online) of the other rollout of the prompt; 2 rollouts per prompt",
        config={
            "algorithm": {
                "advantage": {"name": "poise", "params": {"partner": "others"}},
                # GUESS: DAPO's clip-higher, the baseline the paper matches
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
            },
            "rollout": {"group_size": 2},
        },
    )
)
