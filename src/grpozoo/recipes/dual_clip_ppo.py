"""Dual-clip PPO: GRPO with the loss of negative-advantage tokens capped at −c·A."""

from grpozoo.recipes import Recipe, register_recipe

DUAL_CLIP_PPO = register_recipe(
    Recipe(
        name="dual_clip_ppo",
        citation='Ye et al. 2020, "Mastering Complex Control in MOBA Games with Deep Reinforcement Learning"'
        " (arXiv:1912.09729)",
        changes="dual clip c = 3: a token with A < 0 whose ratio exploded stops pushing (loss capped at "
        "−3·A)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2, "dual_clip": 3.0}},
                "aggregation": "token_mean",
            }
        },
    )
)
