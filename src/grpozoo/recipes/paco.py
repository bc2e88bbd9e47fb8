"""PaCo-GRPO's log-tamed aggregation: every reward part compressed by sign(r)·log(1 + |r|) before
the parts are summed, so no single reward dominates; then GRPO. The paper trains image generators;
only the aggregation transfers."""

from grpozoo.recipes import Recipe, register_recipe

PACO = register_recipe(
    Recipe(
        name="paco",
        citation='Ping et al. 2025, "PaCo-RL: Advancing Reinforcement Learning for Consistent Image'
        ' Generation with Pairwise Reward Modeling" (arXiv:2512.04784)',
        changes="reward parts summed after sign(r)·log(1 + |r|) instead of as they are",
        config={
            "algorithm": {
                "advantage": {"name": "paco_log_tamed", "params": {}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
