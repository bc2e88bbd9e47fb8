"""AsymRE (Asymmetric REINFORCE as REC reads it): REINFORCE with the baseline lowered below
the group mean."""

from grpozoo.recipes import Recipe, register_recipe

ASYMRE = register_recipe(
    Recipe(
        name="asymre",
        citation='Yao et al. 2025, "Group-Relative REINFORCE Is Secretly an Off-Policy Algorithm:'
        ' Demystifying Some Myths About GRPO and Its Friends" (arXiv:2509.24203)',
        changes="REINFORCE with baseline mean_G r − 0.1: positives up-weighted, negatives softened; no ratio, no clip",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "none"}},
                "loss": {"name": "asymre", "params": {"delta": 0.1}},
                "aggregation": "token_mean",
            }
        },
    )
)
