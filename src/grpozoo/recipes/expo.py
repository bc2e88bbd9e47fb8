"""ExPO (ExP-GRPO): for a prompt whose every rollout failed, the policy writes a self-explanation, a
reasoning trace sampled with the ground-truth answer in the prompt; a correct one joins the group as
a positive, in place of a failed rollout, and learns for the prompt *without* the answer.

Built on the guided-rollout mechanism (``algorithm.guidance``): the hint is the task's own ``answer``
column, so any task with reference answers works, no hints column needed.

GUESS: the template that hands the answer over; one self-explanation replaces one failed rollout
(``max_replaced = 1``); a self-explanation counts only when the verifier accepts its final answer;
the ratio's denominator is the answer-conditioned sampler's log-prob (the library's off-policy
ratio, PPO-clipped). The paper's ExP-SFT term (a likelihood term on the self-explanations) is not
included.
"""

from grpozoo.recipes import Recipe, register_recipe

EXPO = register_recipe(
    Recipe(
        name="expo",
        citation='Zhou et al. 2025, "ExPO: Unlocking Hard Reasoning with Self-Explanation-Guided Reinforcement'
        ' Learning" (arXiv:2507.02834)',
        changes="all-fail groups get a self-explanation sampled with the ground-truth answer in the prompt; a "
        "correct one replaces a failed rollout and learns under the prompt without the answer",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "guidance": {
                    "mode": "tiered_hints",
                    "column": "answer",
                    "template": "\n\nThe correct final answer is {hint}. Explain step by step how to reach it, "
                    "then state it.",
                    "learn_with": "unhinted",
                    "replace": "successes",
                    "max_replaced": 1,
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
