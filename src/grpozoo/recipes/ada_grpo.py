"""Ada-GRPO (ARM): rewards of rare reasoning formats scaled up, the scaling decaying over training."""

from grpozoo.recipes import Recipe, register_recipe

ADA_GRPO = register_recipe(
    Recipe(
        name="ada_grpo",
        citation='Wu et al. 2025, "ARM: Adaptive Reasoning Model" (arXiv:2505.20258)',
        changes="reward × (1 + (G/F(format) − 1)·½(1+cos(πt/T))): rare formats (direct, short CoT, code, long CoT) "
        "count up to G times early on",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "ada_grpo"}],
        },
    )
)
