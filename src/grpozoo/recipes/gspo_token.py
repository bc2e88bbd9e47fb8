"""GSPO-token (the GSPO paper's token variant): GSPO's sequence-level clip decision with per-token
gradients, so token-level advantages can be used; identical to GSPO with sequence advantages.
"""

from grpozoo.recipes import Recipe, register_recipe

GSPO_TOKEN = register_recipe(
    Recipe(
        name="gspo_token",
        citation='Zheng et al. 2025, "Group Sequence Policy Optimization" (arXiv:2507.18071)',
        changes="GSPO ratio sg(s_i)·π(y_t)/sg(π(y_t)): sequence-level clip, gradient per token (admits token "
        "advantages)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "gspo_token", "params": {"eps_low": 3e-4, "eps_high": 4e-4}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
