"""SAPO (baseline, Qwen): a smooth sigmoid gate on the ratio instead of the hard clip, steeper for
negative advantages.
"""

from grpozoo.recipes import Recipe, register_recipe

SAPO = register_recipe(
    Recipe(
        name="sapo",
        citation='Gao et al. 2025, "Soft Adaptive Policy Optimization" (arXiv:2511.20347)',
        changes="soft gate σ(τ(ρ−1))·4/τ instead of the clip (τ 1.0 for A > 0, 1.05 for A < 0), mean over "
        "sequences",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "sapo", "params": {"tau_pos": 1.0, "tau_neg": 1.05}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
