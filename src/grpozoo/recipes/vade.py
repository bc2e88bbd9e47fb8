"""VADE: GRPO on prompts picked by Thompson sampling from per-prompt Beta posteriors, so each
batch favours prompts whose success rate is still uncertain."""

from grpozoo.recipes import Recipe, register_recipe

VADE = register_recipe(
    Recipe(
        name="vade",
        citation='Hu et al. 2025, "VADE: Variance-Aware Dynamic Sampling via Online Sample-Level Difficulty'
        ' Estimation for Multimodal RL" (arXiv:2511.18902)',
        changes="prompts by Thompson sampling: top-k of p̃(1−p̃), p̃ ~ Beta posterior per prompt with two-scale "
        "decay to the prior (selector vade)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "vade", "params": {}},
            }
        },
    )
)
