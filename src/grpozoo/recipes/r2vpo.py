"""R²VPO: a ratio-variance constraint, handled primal-dual, instead of hard clipping.

On one pass over a batch the ratio is 1 and the constraint inert, so the recipe takes two optimiser
steps per batch (GUESS)."""

from grpozoo.recipes import Recipe, register_recipe

R2VPO = register_recipe(
    Recipe(
        name="r2vpo",
        citation='Luo et al. 2026, "Ratio-Variance Regularized Policy Optimization for Efficient LLM'
        ' Fine-tuning" (arXiv:2601.03320)',
        changes="unclipped importance-sampled PG plus λ·(Var(ρ) − δ), λ updated by dual ascent after each step",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "r2vpo", "params": {"delta": 0.01, "lambda_lr": 10.0}},
                "aggregation": "token_mean",
                "num_iterations": 2,
            }
        },
    )
)
