"""VL-Rethinker: forced rethinking (a share of the finished rollouts continue after a rethinking
trigger, rewarded by their final answer) and Selective Sample Replay (prompts whose groups carried a
non-zero advantage come back, drawn ∝ |A|, when a step's groups lacked signal).

GUESS: a quarter of the finished rollouts rethought, the trigger "Wait, let me double-check that.",
never learned; the replay selector's own guesses (see ``vl_rethinker_ssr``). The paper's setting is
vision-language; the mechanism here is text-only.
"""

from grpozoo.recipes import Recipe, register_recipe

VL_RETHINKER = register_recipe(
    Recipe(
        name="vl_rethinker",
        citation='Wang et al. 2025, "VL-Rethinker: Incentivizing Self-Reflection of Vision-Language Models with'
        ' Reinforcement Learning" (arXiv:2504.08837)',
        changes="a share of finished rollouts forced to rethink (trigger appended, generation continued); "
        "prompts with non-zero advantage replayed ∝ |A| when groups lack signal",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "vl_rethinker_ssr", "params": {}},
            },
            "rollout": {"rethink": {"fraction": 0.25}},
        },
    )
)
