"""GroupRank: groupwise reranking trained with GRPO on a ranking-metric reward."""

from grpozoo.recipes import Recipe, register_recipe

GROUP_RANK = register_recipe(
    Recipe(
        name="group_rank",
        citation='Sun et al. 2025, "GroupRank: A Groupwise Reranking Paradigm Driven by Reinforcement'
        ' Learning" (arXiv:2511.11653)',
        changes="reward = NDCG@10 of the completion's per-document scores against the row's relevance labels "
        "(plus a score-alignment term, weight 0.5, GUESS); needs a task with a relevance column",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "ndcg", "params": {"k": 10, "alignment_weight": 0.5}}],
        },
    )
)
