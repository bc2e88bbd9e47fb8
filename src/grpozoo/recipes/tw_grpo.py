"""TW-GRPO: token weights from how much a position varies across the group's completions.

The paper's soft multi-choice reward is the ``multichoice_soft`` reward, for multi-choice tasks:
name it in ``rewards`` with such a task (the default task is arithmetic, scored by its verifier)."""

from grpozoo.recipes import Recipe, register_recipe

TW_GRPO = register_recipe(
    Recipe(
        name="tw_grpo",
        citation='Dang et al. 2025, "Reinforcing Video Reasoning with Focused Thinking" (arXiv:2505.24718)',
        changes="per-token loss weights from the intra-group variance of each position's token probability, "
        "normalised to mean 1",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [{"name": "tw_variance", "params": {"min_weight": 0.0}}],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
