"""WirelessMathLM: plain GRPO with a binary math-verify reward on a domain's problems, from the base
checkpoint (no supervised warm start), evaluated on the domain's benchmark file."""

from grpozoo.recipes import Recipe, register_recipe

WIRELESSMATH_GRPO = register_recipe(
    Recipe(
        name="wirelessmath_grpo",
        citation='Li et al. 2025, "WirelessMathLM: Teaching Mathematical Reasoning for LLMs in Wireless'
        ' Communications with Reinforcement Learning" (arXiv:2509.23219)',
        changes="nothing in the algorithm: reward = 1 when math-verify finds the answer equal to the reference, "
        "no KL; train on a domain task file, evaluate with grpozoo eval --benchmark FILE",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            },
            "rewards": [{"name": "math_verify"}],
        },
    )
)
