"""Rank-GRPO: for completions that are ranked lists, each item is an action with a causal rank
reward, an advantage normalised at its rank, and a geometric-mean ratio over its tokens."""

from grpozoo.recipes import Recipe, register_recipe

RANK_GRPO = register_recipe(
    Recipe(
        name="rank_grpo",
        citation='Zhu et al. 2025, "Rank-GRPO: Training LLM-based Conversational Recommender Systems with'
        ' Reinforcement Learning" (arXiv:2510.20150)',
        changes="per-item (line) advantages from the DCG of the list from that rank on, normalised per rank "
        "across the group, with an item-level geometric-mean ratio in PPO clip; mean over sequences",
        config={
            "algorithm": {
                "advantage": {"name": "rank_grpo", "params": {"num_items": 20, "reward": "dcg_suffix"}},
                "loss": {"name": "rank_grpo", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
