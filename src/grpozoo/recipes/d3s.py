"""D³S (A16 / B41), token level: train only the top-ρ tokens by |A|·H, ρ relaxing from 0.2 to 1 over
the run. The sample level (Var(A)-maximising rollout subset) is a separate group filter."""

from grpozoo.recipes import Recipe, register_recipe

D3S = register_recipe(
    Recipe(
        name="d3s",
        entry="A16",
        citation="Wang et al. 2025, Learning More with Less: A Dynamic Dual-Level Down-Sampling Framework "
        "for Efficient Policy Optimization (arXiv:2509.22115)",
        changes="keeps only the top-ρ tokens by |advantage|·entropy, ρ scheduled from 0.2 up to 1",
        config={
            "algorithm": {
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
