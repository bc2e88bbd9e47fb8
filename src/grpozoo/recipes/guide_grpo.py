"""Guide-GRPO: an all-fail group is sampled again with a natural-language hint in the context;
hinted rollouts replace part of the group, and they learn for the context *without* the hint: the
ratio's numerator is π_θ(y | q), its denominator the hinted sampler's π_old(y | q, h), PPO-clipped.

GUESS: up to 2 of the group's failed rollouts are replaced (half of the default group of 4),
successes first; the hint is the first entry of the task's ``hints`` column, then the next ones
while no hinted rollout succeeds; the clip range is GRPO's.
"""

from grpozoo.recipes import Recipe, register_recipe

GUIDE_GRPO = register_recipe(
    Recipe(
        name="guide_grpo",
        citation='Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of Reasoning'
        ' Models" (arXiv:2506.13923)',
        changes="all-fail groups resampled with an in-context hint; hinted rollouts replace part of the group "
        "and learn off-policy under the unhinted prompt; needs a task with a hints column",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "guidance": {
                    "mode": "tiered_hints",
                    "learn_with": "unhinted",
                    "replace": "all",
                    "max_replaced": 2,
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
