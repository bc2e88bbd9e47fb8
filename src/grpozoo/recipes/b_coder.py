"""B-Coder: a value-based objective, the policy's log-probs as the advantage part of a Q-function
regressed on a conservative Bellman target, over a learned critic."""

from grpozoo.recipes import Recipe, register_recipe

B_CODER = register_recipe(
    Recipe(
        name="b_coder",
        citation='Yu et al. 2023, "B-Coder: Value-Based Deep Reinforcement Learning for Program Synthesis" '
        "(arXiv:2310.03173)",
        changes="loss ½(α·log π + V(s_t) − r_t − γ·V(s_{t+1}))² per token over a learned critic (a head on the "
        "policy's hidden states, trained on returns) in place of the clipped policy gradient",
        config={
            "algorithm": {
                # the estimator says what the critic trains on (per-token Monte-Carlo returns, γ = 1); the
                # loss reads the critic, not the advantages
                "advantage": {"name": "poad", "params": {"gamma": 1.0, "action": "token"}},
                "loss": {"name": "b_coder_bellman", "params": {"gamma": 1.0, "alpha": 1.0}},
                "aggregation": "token_mean",
            }
        },
    )
)
