"""DGPO (MathForge's algorithm): MAD-normalised advantages and difficulty-aware question weights."""

from grpozoo.recipes import Recipe, register_recipe

DGPO = register_recipe(
    Recipe(
        name="dgpo",
        citation='Dai et al. 2026, "Harder Is Better: Boosting Mathematical Reasoning via Difficulty-Aware'
        ' GRPO and Multi-Aspect Question Reformulation" (arXiv:2601.20614)',
        changes="advantage divided by the group's mean absolute deviation (equal total update per "
        "question) and weighted by softmax(−accuracy/2) over questions",
        config={
            "algorithm": {
                "advantage": {"name": "dgpo", "params": {"temperature": 2.0}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
