"""REAL: rewards as labels, an anchored multi-label softmax over each group's log-ratios."""

from grpozoo.recipes import Recipe, register_recipe

REAL = register_recipe(
    Recipe(
        name="real",
        citation='Zhai et al. 2026, "Rewards as Labels: Revisiting RLVR from a Classification Perspective"'
        " (arXiv:2602.05630)",
        changes="replaces the clipped surrogate by a per-question classification loss on length-normalised "
        "log-ratios (τ = 0.5); no clip; mean over questions",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "real", "params": {"tau": 0.5}},
                "aggregation": "per_prompt_mean",
            }
        },
    )
)
