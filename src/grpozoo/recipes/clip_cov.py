"""Clip-Cov (baseline): PPO clip, plus the gradient of a few random high-covariance tokens detached to
slow entropy collapse.
"""

from grpozoo.recipes import Recipe, register_recipe

CLIP_COV = register_recipe(
    Recipe(
        name="clip_cov",
        citation='Cui et al. 2025, "The Entropy Mechanism of Reinforcement Learning for Reasoning Language'
        ' Models" (arXiv:2505.22617)',
        changes="detach the gradient of a random 2e-4 share of tokens whose logp/advantage covariance lies "
        "in (1, 5)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {
                    "name": "clip_cov",
                    "params": {
                        "eps_low": 0.2,
                        "eps_high": 0.2,
                        "clip_ratio": 2e-4,
                        "cov_low": 1.0,
                        "cov_high": 5.0,
                    },
                },
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
