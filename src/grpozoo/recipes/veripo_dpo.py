"""VerIPO's DPO stage: the best and worst rollouts of each group become a preference pair trained
with DPO against the reference."""

from grpozoo.recipes import Recipe, register_recipe

VERIPO_DPO = register_recipe(
    Recipe(
        name="veripo_dpo",
        citation='Li et al. 2025, "VerIPO: Cultivating Long Reasoning in Video-LLMs via Verifier-Guided'
        ' Iterative Policy Optimization" (arXiv:2505.19000)',
        changes="one pair per group (best reward, longest on ties, vs worst) trained with DPO (β = 0.1, "
        "sequence log-probs vs the reference) instead of the clipped surrogate; mean over prompts",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "best_worst_dpo", "params": {"beta": 0.1, "prefer_long": True}},
                "aggregation": "per_prompt_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
