"""GHPO: an all-fail group is sampled again with the first ⌈ω·n⌉ tokens of the reference
solution (task column ``hints``) in the prompt, ω = 0.25, 0.5, 0.75 in turn until a rollout
succeeds; the hinted group replaces the group. Prompts already solvable train with plain GRPO.

GUESS: the ω levels, escalated within a step; the hinted group learns with the prefix in its prompt.
"""

from grpozoo.recipes import Recipe, register_recipe

GHPO = register_recipe(
    Recipe(
        name="ghpo",
        citation='Liu et al. 2025, "GHPO: Adaptive Guidance for Stable and Efficient LLM Reinforcement'
        ' Learning" (arXiv:2507.10628)',
        changes="all-fail groups resampled with a growing prefix of the reference solution in the prompt "
        "(ω 0.25 → 0.5 → 0.75); needs a task whose hints column holds solutions",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "guidance": {
                    "mode": "solution_prefix",
                    "prefix_fractions": [0.25, 0.5, 0.75],
                    "template": "\nThe following text is the beginning part of the answer, which you can "
                    "refer to for solving the problem:\n{hint}",
                    "learn_with": "hinted",
                    "replace": "all",
                    "max_replaced": None,
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
