"""EVOL-RL: label-free majority vote plus a novelty bonus, on clip-higher with an entropy bonus.

GUESS: the entropy coefficient (0.001) and eps_high (0.28, DAPO's); the text embedding of the novelty
term (character 3-gram TF-IDF, see ``grpozoo.rewards.label_free.evol_rl_reward``).
"""

from grpozoo.recipes import Recipe, register_recipe

EVOL_RL = register_recipe(
    Recipe(
        name="evol_rl",
        citation='Zhou et al. 2025, "Evolving Language Models without Labels: Majority Drives Selection,'
        ' Novelty Promotes Variation" (arXiv:2509.15194)',
        changes="majority answers rewarded in [0.5, 1] and minority in [-1, -0.5], ordered by novelty; clip-higher, entropy bonus",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
                "entropy": {"coef": 0.001},
            },
            "rewards": [{"name": "evol_rl"}],
        },
    )
)
