"""RiskPO: bundles of consecutive prompts scored per "paper", and a Mixed-VaR advantage against
online quantiles of the paper scores (risk-averse: the lower tail gets the gradient)."""

from grpozoo.recipes import Recipe, register_recipe

RISKPO = register_recipe(
    Recipe(
        name="riskpo",
        citation='Ren et al. 2025, "RiskPO: Risk-based Policy Optimization via Verifiable Reward for LLM'
        ' Post-Training" (arXiv:2510.00911)',
        changes="advantage = Mixed-VaR (CVaR + range-VaR, w=1.5, levels 0.2/0.8) of bundle paper scores "
        "against online quantiles, instead of the group mean/std",
        config={
            "algorithm": {
                "advantage": {
                    "name": "riskpo",
                    "params": {"bundle_size": 5, "mode": "mvar", "alpha": 0.2, "beta": 0.8, "weight": 1.5},
                },
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
