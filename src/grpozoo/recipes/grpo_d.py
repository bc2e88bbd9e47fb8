"""GRPO-D (OThink-MR1): GRPO whose KL-to-reference weight grows over training instead of staying constant."""

from grpozoo.recipes import Recipe, register_recipe

GRPO_D = register_recipe(
    Recipe(
        name="grpo_d",
        citation='Liu et al. 2025, "OThink-MR1: Stimulating multimodal generalized reasoning capabilities via '
        'dynamic reinforcement learning" (arXiv:2503.16081)',
        changes="KL coefficient on a schedule: 0 at the first step growing linearly to 0.04 at the last "
        "(explore, then exploit)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.04, "coef_start": 0.0, "schedule": "linear", "estimator": "k3", "mode": "loss"},
            }
        },
    )
)
