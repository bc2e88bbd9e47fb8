"""D³S, both levels: from each group keep the rollouts whose advantages vary most (k of G,
k/G relaxing from 0.5 to 1), and train only the top-ρ tokens by |A|·H (ρ relaxing from 0.2 to 1)."""

from grpozoo.recipes import Recipe, register_recipe

D3S = register_recipe(
    Recipe(
        name="d3s",
        citation='Wang et al. 2025, "Learning More with Less: A Dynamic Dual-Level Down-Sampling Framework'
        ' for Efficient Policy Optimization" (arXiv:2509.22115)',
        changes="keeps the k of G rollouts per group with the largest advantage variance (k/G from 0.5 up to 1) "
        "and only the top-ρ tokens by |advantage|·entropy (ρ from 0.2 up to 1)",
        config={
            "algorithm": {
                "group_filters": [
                    {
                        "name": "d3s_rollouts",
                        "params": {"ratio_start": 0.5, "ratio_end": 1.0, "schedule": "linear"},
                    }
                ],
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "token_weights": [
                    {"name": "d3s_tokens", "params": {"rho_start": 0.2, "rho_end": 1.0, "schedule": "linear"}}
                ],
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
