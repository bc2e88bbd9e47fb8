"""Knapsack RL: GRPO with the step's rollout budget split unevenly across prompts, maximising the
expected value of non-zero-gradient groups from each prompt's estimated success rate."""

from grpozoo.recipes import Recipe, register_recipe

KNAPSACK_RL = register_recipe(
    Recipe(
        name="knapsack_rl",
        citation='Li et al. 2025, "Knapsack RL: Unlocking Exploration of LLMs via Optimizing Budget'
        ' Allocation" (arXiv:2509.25849)',
        changes="rollouts per prompt N_i maximise Σ[1−pᴺ−(1−p)ᴺ]·p(1−p)² under the same total budget, "
        "N_i ≥ 2 (selector knapsack_rl)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "knapsack_rl", "params": {"n_min": 2}},
            }
        },
    )
)
