"""DHPO (A11): a mixture of the token ratio (GRPO) and the sequence ratio (GSPO), each clipped in its own
range before mixing. The averaged variant; ``mix: entropy`` selects the entropy-guided one.
"""

from grpozoo.recipes import Recipe, register_recipe

DHPO = register_recipe(
    Recipe(
        name="dhpo",
        entry="A11",
        citation="Orchestrating Tokens and Sequences: Dynamic Hybrid Policy Optimization for RLVR (2026)",
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
