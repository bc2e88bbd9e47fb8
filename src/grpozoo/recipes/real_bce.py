"""REAL-BCE: REAL's plain binary cross-entropy variant."""

from grpozoo.recipes import Recipe, register_recipe

REAL_BCE = register_recipe(
    Recipe(
        name="real_bce",
        citation='Zhai et al. 2026, "Rewards as Labels: Revisiting RLVR from a Classification Perspective"'
        " (arXiv:2602.05630)",
        changes="replaces the clipped surrogate by BCE(s_i/τ, correct_i) on length-normalised log-ratios; no clip",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "real_bce", "params": {"tau": 0.5}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
