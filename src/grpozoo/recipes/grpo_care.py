"""GRPO-CARE: a consistency bonus from an EMA reference in place of the KL penalty."""

from grpozoo.recipes import Recipe, register_recipe

GRPO_CARE = register_recipe(
    Recipe(
        name="grpo_care",
        citation='Chen et al. 2025, "GRPO-CARE: Consistency-Aware Reinforcement Learning for Multimodal'
        ' Reasoning" (arXiv:2506.16141)',
        changes="+0.5 for a correct answer that an EMA reference finds likelier given the reasoning than its "
        "correct peers do; no KL (GUESS bonus and decay)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            },
            "rewards": [{"name": "grpo_care"}],
        },
    )
)
