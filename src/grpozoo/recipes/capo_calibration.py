"""CAPO (calibration): advantages from the gradient of a logistic AUC surrogate, so right rollouts
are pushed to be more confident than the wrong ones of the same prompt."""

from grpozoo.recipes import Recipe, register_recipe

CAPO_CALIBRATION = register_recipe(
    Recipe(
        name="capo_calibration",
        citation='Wang et al. 2026, "Calibration-Aware Policy Optimization for Reasoning LLMs" (arXiv:2604.12632)',
        changes="advantage = gradient of the within-prompt logistic AUC surrogate of the mean-log-prob "
        "confidence: right rollouts +mean σ(c_j−c_i), wrong ones −mean σ(c_j−c_i)",
        config={
            "algorithm": {
                "advantage": {"name": "capo_calibration", "params": {"threshold": 0.5}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
