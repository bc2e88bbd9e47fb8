"""Segment SPO, chain variant: completions cut after every k-th low-probability token,
Monte-Carlo values at the cuts, and each segment's value gain as the advantage of its
low-probability tokens.

Defaults are sized for a CPU run with 24-token completions: a cut after every 10th cutpoint gives
1–3 segments per completion, so few boundary states need Monte-Carlo continuations (2 each).
"""

import math

from grpozoo.recipes import Recipe, register_recipe

SEGMENT_SPO = register_recipe(
    Recipe(
        name="segment_spo",
        citation='Guo et al. 2025, "Segment Policy Optimization: Effective Segment-Level Credit Assignment'
        ' in RL for Large Language Models" (arXiv:2505.23564)',
        changes="advantage V(s_{k+1}) − V(s_k) per segment from Monte-Carlo values at cutpoint boundaries, "
        "applied only to the segment's low-probability tokens",
        config={
            "algorithm": {
                "advantage": {
                    "name": "segment_spo",
                    "params": {
                        "cutpoint_logprob": math.log(0.9),
                        "every": 10,
                        "probability_mask": True,
                        "num_continuations": 2,
                    },
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
