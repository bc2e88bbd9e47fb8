"""GRPO-VPS: the policy's probability of the gold answer, read by teacher forcing at each segment
boundary, gives every segment a progress term added to the GRPO outcome advantage."""

from grpozoo.recipes import Recipe, register_recipe

GRPO_VPS = register_recipe(
    Recipe(
        name="grpo_vps",
        citation='Wang et al. 2026, "GRPO-VPS: Enhancing Group Relative Policy Optimization with Verifiable '
        'Process Supervision for Effective Reasoning" (arXiv:2604.20659)',
        changes="token advantage = GRPO outcome advantage + β · group-standardised segment progress "
        "p_k − p_{k−1} of π(gold answer | prefix)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo_vps", "params": {"beta": 0.1, "space": "prob", "split": "lines"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
