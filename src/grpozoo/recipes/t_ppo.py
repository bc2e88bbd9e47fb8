"""T-PPO: PPO with extended GAE, so responses cut at the generation window still teach the policy
(bootstrapping with the critic's value at the cut), while the critic learns only from completed
responses."""

from grpozoo.recipes import Recipe, register_recipe

T_PPO = register_recipe(
    Recipe(
        name="t_ppo",
        citation='Fan et al. 2025, "Truncated Proximal Policy Optimization" (arXiv:2506.15050)',
        changes="token-level extended GAE over a learned critic (a head on the policy's hidden states): a "
        "truncated response bootstraps with V at the cut, the critic trains on completed responses only",
        config={
            "algorithm": {
                "advantage": {"name": "t_ppo_egae", "params": {"gamma": 1.0, "lam": 0.95}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
            }
        },
    )
)
