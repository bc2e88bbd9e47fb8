"""PS-GRPO: paraphrases of one query are sampled together, each completion paid for agreeing with
the completions of the other paraphrases."""

from grpozoo.recipes import Recipe, register_recipe

PS_GRPO = register_recipe(
    Recipe(
        name="ps_grpo",
        citation='Hamman et al. 2025, "Improving Consistency in Retrieval-Augmented Systems with Group'
        ' Similarity Rewards" (arXiv:2510.04392)',
        changes="reward = mean word-set similarity to the completions of the query's other paraphrases "
        "(task column query_id), no gold answer read",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "group_similarity"}],
        },
    )
)
