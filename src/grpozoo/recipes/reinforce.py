"""REINFORCE (baseline): the group-mean baseline and the plain score-function loss −A·log π."""

from grpozoo.recipes import Recipe, register_recipe

REINFORCE = register_recipe(
    Recipe(
        name="reinforce",
        citation='Williams 1992, "Simple Statistical Gradient-Following Algorithms for Connectionist'
        ' Reinforcement Learning" (Machine Learning 8)',
        changes="plain REINFORCE −(r − mean_G r)·log π: no ratio, no clip, no std division",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "none"}},
                "loss": {"name": "reinforce", "params": {"importance_weight": "none"}},
                "aggregation": "token_mean",
            }
        },
    )
)
