"""GPG: group policy gradient without surrogate, KL or std, with a valid-sample correction."""

from grpozoo.recipes import Recipe, register_recipe

GPG = register_recipe(
    Recipe(
        name="gpg",
        citation='Chu et al. 2025, "GPG: A Simple and Strong Reinforcement Learning Baseline for Model'
        ' Reasoning" (arXiv:2504.02546)',
        changes="advantage = group-mean centring times B/(B − samples in zero-variance groups), no "
        "std; plain policy gradient (no ratio clip), no KL",
        config={
            "algorithm": {
                "advantage": {"name": "gpg", "params": {}},
                "loss": {"name": "reinforce", "params": {}},
                "aggregation": "token_mean",
            }
        },
    )
)
