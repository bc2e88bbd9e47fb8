"""GBPO: group-relative BPO, the bounded-ratio loss on GRPO's group-normalised advantages."""

from grpozoo.recipes import Recipe, register_recipe

GBPO = register_recipe(
    Recipe(
        name="gbpo",
        citation='Ao et al. 2026, "Bounded Ratio Reinforcement Learning" (arXiv:2604.18578)',
        changes="loss |A|·(ρ − r*)²/(2ε) toward the bounded-ratio optimum r* = 1 ± 0.2 instead of the "
        "clipped surrogate",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "bpo", "params": {"eps_low": 0.2, "eps_high": 0.2, "target": "sign"}},
                "aggregation": "token_mean",
            }
        },
    )
)
