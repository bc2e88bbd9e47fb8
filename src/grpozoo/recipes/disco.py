"""DisCO: a discriminative objective (mean log-likelihood score, log-sum-exp over negatives)
with a squared-hinge KL constraint instead of clipping."""

from grpozoo.recipes import Recipe, register_recipe

DISCO = register_recipe(
    Recipe(
        name="disco",
        citation='Li et al. 2025, "DisCO: Reinforcing Large Reasoning Models with Discriminative Constrained'
        ' Optimization" (arXiv:2505.12366)',
        changes="per-question discriminative score objective (logL, DRO, τ = 10), KL(π_old‖π) ≤ 1e-4 by "
        "squared hinge, no clip, no difficulty weighting; mean over questions",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {
                    "name": "disco",
                    "params": {"score": "logL", "objective": "dro", "delta": 1e-4, "beta": 1e3},
                },
                "aggregation": "per_prompt_mean",
            }
        },
    )
)
