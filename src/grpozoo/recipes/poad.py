"""POAD: PPO with a token-level critic and the Bellman backup with action decomposition (no reward
and no discount inside an action, γ across actions)."""

from grpozoo.recipes import Recipe, register_recipe

POAD = register_recipe(
    Recipe(
        name="poad",
        citation='Wen et al. 2024, "Reinforcing Language Agents via Policy Optimization with Action '
        'Decomposition" (arXiv:2405.15821)',
        changes="token-level GAE over a learned critic (a head on the policy's hidden states) in place of the "
        "group baseline; γ and λ only across actions (tool-call turns)",
        config={
            "algorithm": {
                "advantage": {"name": "poad", "params": {"gamma": 1.0, "lam": 0.95, "action": "turn"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
