"""The GRPO stage of the two-stage SFT → GRPO recipe: after long supervised fine-tuning on worked
solutions (``grpozoo sft``), GRPO with a length-aware reward shortens the solutions while keeping the
accuracy SFT reached.

The authors' GRPO stage rewards a format, a cosine length-scaled correctness and Kimi-1.5's length
reward (Kimi Team 2025, arXiv:2501.12599). Here the reward is the closest one registered:
``grpo_lambda`` with ``top_fraction=1.0``, i.e. correctness plus Kimi-1.5's length reward in every
group with a right answer (a right completion earns ``0.5 − (L − L_min)/(L_max − L_min)`` on top, a
wrong one at most 0), with no format or cosine term. ``rollout.max_new_tokens=48`` leaves room for
the worked solutions of the default task (about 33 tokens with EOS), which SFT teaches.
"""

from grpozoo.recipes import Recipe, register_recipe

SFT_GRPO = register_recipe(
    Recipe(
        name="sft_grpo",
        citation='Yoshihara, Yamaguchi & Inoue 2025, "A Practical Two-Stage Recipe for Mathematical LLMs: '
        'Maximizing Accuracy with SFT and Efficiency with Reinforcement Learning" (arXiv:2507.08267)',
        changes="start from `grpozoo sft`'s output (--model DIR/model); correctness + Kimi-1.5 length reward in "
        "every group with a right answer, to shorten solutions at the same accuracy",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "grpo_lambda", "params": {"top_fraction": 1.0}}],
            "rollout": {"max_new_tokens": 48},
        },
    )
)
