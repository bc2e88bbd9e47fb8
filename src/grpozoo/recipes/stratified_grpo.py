"""Stratified GRPO: advantages normalised within structural strata, blended with GRPO"s."""

from grpozoo.recipes import Recipe, register_recipe

STRATIFIED_GRPO = register_recipe(
    Recipe(
        name="stratified_grpo",
        citation='Zhu et al. 2025, "Stratified GRPO: Handling Structural Heterogeneity in Reinforcement'
        ' Learning of LLM Search Agents" (arXiv:2510.06214)',
        changes="advantage normalised within strata of equal search-call count (inside each group), "
        "blended 0.8/0.2 with GRPO's",
        config={
            "algorithm": {
                "advantage": {"name": "stratified_grpo", "params": {"alpha": 0.8, "scope": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
