"""BPO: the policy fitted to the bounded-ratio optimum (r* = 1 ± ε by the sign of A) by an
advantage-weighted squared divergence, instead of PPO's clipped surrogate. The paper's BPO learns a
critic; without one, the advantage here is the group-mean baseline without the std."""

from grpozoo.recipes import Recipe, register_recipe

BPO = register_recipe(
    Recipe(
        name="bpo",
        citation='Ao et al. 2026, "Bounded Ratio Reinforcement Learning" (arXiv:2604.18578)',
        changes="loss |A|·(ρ − r*)²/(2ε) toward the bounded-ratio optimum r* = 1 ± 0.2 instead of the "
        "clipped surrogate; advantage r − group mean, no std",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "none"}},
                "loss": {"name": "bpo", "params": {"eps_low": 0.2, "eps_high": 0.2, "target": "sign"}},
                "aggregation": "token_mean",
            }
        },
    )
)
