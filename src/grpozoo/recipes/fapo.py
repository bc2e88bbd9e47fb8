"""FAPO: flawed positives (right answer, flawed reasoning) rewarded 0 between +1 and -1."""

from grpozoo.recipes import Recipe, register_recipe

FAPO = register_recipe(
    Recipe(
        name="fapo",
        citation='Ding et al. 2025, "FAPO: Flawed-Aware Policy Optimization for Efficient and Reliable'
        ' Reasoning" (arXiv:2510.22543)',
        changes="±1 outcome reward; a right answer whose reasoning a flaw detector flags gets 0 (rule-based detector by default)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "fapo"}],
        },
    )
)
