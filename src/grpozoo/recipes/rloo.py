"""RLOO: REINFORCE with a leave-one-out baseline."""

from grpozoo.recipes import Recipe, register_recipe

RLOO = register_recipe(
    Recipe(
        name="rloo",
        citation='Ahmadian et al. 2024, "Back to Basics: Revisiting REINFORCE Style Optimization for'
        ' Learning from Human Feedback in LLMs" (arXiv:2402.14740)',
        changes="leave-one-out baseline r_i − mean of the others, no std division; plain REINFORCE on "
        "the whole completion (log-probs summed per sequence) instead of the clipped token "
        "surrogate",
        config={
            "algorithm": {
                "advantage": {"name": "rloo", "params": {}},
                "loss": {"name": "reinforce", "params": {}},
                "aggregation": "sequence_mean_token_sum",
            }
        },
    )
)
