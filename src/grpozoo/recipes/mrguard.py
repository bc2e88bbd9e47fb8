"""MrGuard's curriculum GRPO: the task's rows, ordered from easy to hard, are cut into stages; prompts
come only from the stages unlocked so far, and the next stage unlocks once the newest is learnt.

GUESS: three equal stages in the task's row order (sort a file by difficulty: the paper orders by
language resource level and perturbation difficulty), the next unlocked at a mean verifier score of
0.7 on the newest stage's prompts, GRPO otherwise. The paper's SFT stage and its safety-classification
reward are not part of the recipe (the task's verifier is the reward).
"""

from grpozoo.recipes import Recipe, register_recipe

MRGUARD = register_recipe(
    Recipe(
        name="mrguard",
        citation='Yang et al. 2025, "MrGuard: A Multilingual Reasoning Guardrail for Universal LLM Safety"'
        " (EMNLP 2025)",
        changes="staged curriculum: prompts drawn only from the easy-to-hard buckets unlocked so far; the next "
        "bucket unlocks when the newest is learnt",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "staged_curriculum", "params": {"stages": 3, "advance_at": 0.7}},
            }
        },
    )
)
