"""CAPO (curvature): mask the tokens whose own policy-gradient step has the largest predicted KL change."""

from grpozoo.recipes import Recipe, register_recipe

CAPO_CURVATURE = register_recipe(
    Recipe(
        name="capo_curvature",
        citation='Melo, Abate & Gal 2025, "Stabilizing Policy Gradients for Sample-Efficient Reinforcement '
        'Learning in LLM Reasoning" (arXiv:2510.00819)',
        changes="masks the 5% of tokens with the largest logit-space Fisher score ½A²p(1−p)³ (predicted KL "
        "change of their own step) before the GRPO loss",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [{"name": "capo_curvature", "params": {"reject_fraction": 0.05}}],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
