"""TRPA: DPO-style pairs across rule-defined preference levels of a group, against the reference,
with a KL trust region to the old policy."""

from grpozoo.recipes import Recipe, register_recipe

TRPA = register_recipe(
    Recipe(
        name="trpa",
        citation='Su et al. 2025, "Trust Region Preference Approximation: A simple and stable reinforcement'
        ' learning algorithm for LLM reasoning" (arXiv:2504.04524)',
        changes="pairs across reward levels of a group with a length-normalised DPO loss (β = 0.1, ×2.5 for "
        "top-level winners) instead of advantages, k3 KL to π_old (0.001) and to π_ref (0.001); mean over prompts",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {
                    "name": "trpa",
                    "params": {"beta": 0.1, "anisotropy": 2.5, "trust_region_coef": 0.001},
                },
                "aggregation": "per_prompt_mean",
                "kl": {"coef": 0.001, "estimator": "k3", "mode": "loss"},
            }
        },
    )
)
