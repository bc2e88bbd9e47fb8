"""RL-Struct: GRPO on a hierarchical JSON reward (parse, schema, validity, content)."""

from grpozoo.recipes import Recipe, register_recipe

RL_STRUCT = register_recipe(
    Recipe(
        name="rl_struct",
        citation='Hu and Wu 2025, "RL-Struct: A Lightweight Reinforcement Learning Framework for Reliable'
        ' Structured Output in LLMs" (arXiv:2512.00319)',
        changes="reward = weighted parse/schema/validity/content scores of the JSON in the completion (equal weights, GUESS)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "json_structured"}],
        },
    )
)
