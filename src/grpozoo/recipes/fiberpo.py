"""FiberPO: the ratio gate split into a trajectory-level gate on the mean log-ratio and a token-level
gate on each token's residual, each with its own budget."""

from grpozoo.recipes import Recipe, register_recipe

FIBERPO = register_recipe(
    Recipe(
        name="fiberpo",
        citation='Li et al. 2026, "Fibration Policy Optimization" (arXiv:2603.08239)',
        changes="ratio exp(clip(mean log ρ, ±0.05) + clip(log ρ_t − mean, ±0.2)) in an unclipped "
        "surrogate instead of the token clip",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "fiberpo", "params": {"delta_traj": 0.05, "delta_tok": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
