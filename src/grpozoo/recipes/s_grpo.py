"""S-GRPO: decaying reward for right early exits, 1, 1/2, 1/4, ...

The paper's serial groups (one trace cut at several exit points) need a rollout path grpozoo does not
have; ``s_grpo`` reads an ``exit_position`` column when a task provides one and otherwise ranks the
group's independent completions by length (GUESS), which makes this a decaying length reward.
"""

from grpozoo.recipes import Recipe, register_recipe

S_GRPO = register_recipe(
    Recipe(
        name="s_grpo",
        citation='Dai et al. 2025, "S-GRPO: Early Exit via Reinforcement Learning in Reasoning Models"'
        " (arXiv:2505.07686)",
        changes="right answers rewarded 1/2^k, k = number of right answers that exit (end) earlier in the group",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "s_grpo"}],
        },
    )
)
