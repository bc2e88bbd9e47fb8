"""COPO: a global advantage from pass rate and answer consistency, blended with the local
GRPO one by answer entropy.

Clip range: the authors build on DAPO; eps_high 0.28 is a GUESS."""

from grpozoo.recipes import Recipe, register_recipe

COPO = register_recipe(
    Recipe(
        name="copo",
        citation='Han et al. 2025, "COPO: Consistency-Aware Policy Optimization" (arXiv:2508.04138)',
        changes="adds a batch-wide global advantage p̂·(1 − λH) and blends the two PPO-clip losses by "
        "w = sigmoid(20(H − 0.5)): consistent groups still learn",
        config={
            "algorithm": {
                "advantage": {"name": "copo", "params": {"entropy_factor": True, "k": 20.0, "b": 0.5}},
                "loss": {"name": "copo", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
            }
        },
    )
)
