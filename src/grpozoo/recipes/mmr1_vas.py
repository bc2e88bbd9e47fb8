"""MMR1 Variance-Aware Sampling: GRPO where half of each batch is drawn by the Variance
Promotion Score (outcome variance plus trajectory diversity) and the rest uniformly."""

from grpozoo.recipes import Recipe, register_recipe

MMR1_VAS = register_recipe(
    Recipe(
        name="mmr1_vas",
        citation='Leng et al. 2025, "MMR1: Enhancing Multimodal Reasoning with Variance-Aware Sampling and'
        ' Open Resources" (arXiv:2509.21268)',
        changes="a share λ=0.5 of each batch's prompts drawn ∝ VPS = p̂(1−p̂) + 0.25·diversity, the rest "
        "uniform (selector mmr1_vas)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "mmr1_vas", "params": {"fraction": 0.5}},
            }
        },
    )
)
