"""Pref-GRPO: each completion's pairwise win rate in its group as the reward."""

from grpozoo.recipes import Recipe, register_recipe

PREF_GRPO = register_recipe(
    Recipe(
        name="pref_grpo",
        citation='Wang et al. 2025, "Pref-GRPO: Pairwise Preference Reward-based GRPO for Stable Text-to-Image'
        ' Reinforcement Learning" (arXiv:2508.20751)',
        changes="reward = win rate against the group under a pairwise judge (both orders; the policy's base "
        "weights by default) instead of a pointwise score",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "pref_grpo"}],
        },
    )
)
