"""High-entropy minority tokens (the mechanism EARL builds on): policy gradient only on the top 20% entropy
tokens of the batch, on DAPO's loss settings."""

from grpozoo.recipes import Recipe, register_recipe

HIGH_ENTROPY_MINORITY = register_recipe(
    Recipe(
        name="high_entropy_minority",
        citation='Wang et al. 2025, "Beyond the 80/20 Rule: High-Entropy Minority Tokens Drive Effective'
        ' Reinforcement Learning for LLM Reasoning" (arXiv:2506.01939)',
        changes="trains only the 20% highest-entropy tokens of the batch; DAPO clip-higher, token-mean, no KL",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [
                    {"name": "entropy_top_quantile", "params": {"fraction": 0.2, "scope": "batch"}}
                ],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
