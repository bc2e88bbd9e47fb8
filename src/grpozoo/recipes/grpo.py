"""GRPO: group-normalised advantages with the PPO clipped surrogate."""

from grpozoo.recipes import Recipe, register_recipe

GRPO = register_recipe(
    Recipe(
        name="grpo",
        citation='Shao et al. 2024, "DeepSeekMath: Pushing the Limits of Mathematical Reasoning in Open'
        ' Language Models" (arXiv:2402.03300)',
        changes="the reference point: group mean/std advantage, PPO clip, token-mean loss (the paper averages "
        "per sequence first: --set algorithm.aggregation=sequence_mean)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
