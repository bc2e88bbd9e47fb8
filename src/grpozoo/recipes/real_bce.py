"""REAL-BCE (A8): REAL's plain binary cross-entropy variant."""

from grpozoo.recipes import Recipe, register_recipe

REAL_BCE = register_recipe(
    Recipe(
        name="real_bce",
        entry="A8",
        citation="REAL 2025, Rewards as Labels: Revisiting RLVR from a Classification Perspective",
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
