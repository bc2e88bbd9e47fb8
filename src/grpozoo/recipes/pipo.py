"""PIPO: closed-loop weighting; the policy loss is scaled up after a measured improvement of the
batch mean reward over a sliding window of past steps, and down after a drop."""

from grpozoo.recipes import Recipe, register_recipe

PIPO = register_recipe(
    Recipe(
        name="pipo",
        citation='Wang et al. 2026, "Policy Improvement Reinforcement Learning" (arXiv:2604.00860)',
        changes="policy loss × (1 + 0.5·tanh(ξ)), ξ the batch mean reward's improvement over the mean of "
        "the previous 8 steps, normalised by their spread",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [{"name": "pipo", "params": {"window": 8, "kappa": 0.5}}],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
