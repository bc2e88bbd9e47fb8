"""EARL: entropy-gated updates, policy gradient only on the top-ρ entropy tokens."""

from grpozoo.recipes import Recipe, register_recipe

EARL = register_recipe(
    Recipe(
        name="earl",
        citation='Shi et al. 2025, "EARL: Entropy-Aware RL Alignment of LLMs for Reliable RTL Code'
        ' Generation" (arXiv:2511.12033)',
        changes="masks every token outside the batch's top-20% entropy quantile (GUESS: ρ = 0.2)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [{"name": "earl", "params": {"rho": 0.2}}],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
