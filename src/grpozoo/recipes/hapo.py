"""HAPO: token-entropy-aware policy optimisation on a DAPO base: length-weighted group advantage
(part c), entropy-modulated advantages (part d), asymmetric adaptive clip with dual clip (part e).
Part (b), adaptive sampling temperature, needs a generator hook and is not part of this recipe.
"""

from grpozoo.recipes import Recipe, register_recipe

HAPO = register_recipe(
    Recipe(
        name="hapo",
        citation='Liu et al. 2025, "From Uniform to Heterogeneous: Tailoring Policy Optimization to Every'
        " Token's Nature\" (arXiv:2509.16591)",
        changes="token-length-weighted group advantage; entropy-scaled advantages and clip ranges per token; "
        "dual clip 3",
        config={
            "algorithm": {
                "advantage": {"name": "hapo_length_weighted", "params": {}},
                "loss": {
                    "name": "hapo",
                    "params": {
                        "eps_low": 0.2,
                        "eps_high": 0.28,
                        "clip_alpha": 1.0,
                        "adv_beta": 1.0,
                        "dual_clip": 3.0,
                    },
                },
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
