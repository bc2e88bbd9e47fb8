"""Scaf-GRPO: after a guidance-free opening, an all-fail group is sampled again with tiered
hints (concept, plan, concrete steps) from the task's ``hints`` column, tier by tier until one hinted
rollout succeeds; that rollout replaces one failed rollout and GRPO advantages follow on the mixed group.

GUESS: the opening is the first 10% of the steps (``start_fraction``); a group is stuck when it
fails in the current step; the hinted rollout learns with the hint in its prompt
(``learn_with=hinted``; ``unhinted`` is Guide's choice).
"""

from grpozoo.recipes import Recipe, register_recipe

SCAF_GRPO = register_recipe(
    Recipe(
        name="scaf_grpo",
        citation='Zhang et al. 2025, "Scaf-GRPO: Scaffolded Group Relative Policy Optimization for Enhancing'
        ' LLM Reasoning" (arXiv:2510.19807)',
        changes="all-fail groups resampled with tiered in-prompt hints (least concrete that works); one hinted "
        "success replaces a failed rollout; needs a task with a hints column",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "guidance": {
                    "mode": "tiered_hints",
                    "learn_with": "hinted",
                    "replace": "successes",
                    "max_replaced": 1,
                    "start_fraction": 0.1,
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
