"""CAPO: an LLM critic flags the wrong steps of each completion; their tokens get a penalty on top
of the GRPO outcome advantage.

Sized for a CPU run: 3 critiques of at most 24 tokens each, majority vote (2 of 3); the critic is the
policy's base model (adapters off), where the paper uses a large off-the-shelf LLM.
"""

from grpozoo.recipes import Recipe, register_recipe

CAPO_CREDIT = register_recipe(
    Recipe(
        name="capo_credit",
        citation='Xie et al. 2025, "CAPO: Towards Enhancing LLM Reasoning through Verifiable Generative Credit '
        'Assignment" (arXiv:2508.02298)',
        changes="token advantage = GRPO outcome advantage − a penalty on the tokens of steps an LLM critic "
        "flags as wrong (k-of-N vote over sampled critiques)",
        config={
            "algorithm": {
                "advantage": {
                    "name": "capo",
                    "params": {"penalty_correct": 0.2, "penalty_incorrect": 0.5, "critiques": 3, "threshold": 2},
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
