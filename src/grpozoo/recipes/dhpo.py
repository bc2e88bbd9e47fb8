"""DHPO: a mixture of the token ratio (GRPO) and the sequence ratio (GSPO), each clipped in its own
range before mixing. The averaged variant; ``mix: entropy`` selects the entropy-guided one.
"""

from grpozoo.recipes import Recipe, register_recipe

DHPO = register_recipe(
    Recipe(
        name="dhpo",
        citation='Min et al. 2026, "Orchestrating Tokens and Sequences: Dynamic Hybrid Policy Optimization'
        ' for RLVR" (arXiv:2601.05607)',
        changes="ratio = ½·clip(token ratio, 0.8, 1.28) + ½·clip(sequence ratio, 1 ± 4e-4), branch-clipped "
        "before mixing",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "dhpo", "params": {"mix": "average", "token_weight": 0.5}},
                "aggregation": "token_mean",
            }
        },
    )
)
