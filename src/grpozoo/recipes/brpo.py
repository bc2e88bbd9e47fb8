"""AnytimeReasoner's BRPO: each completion is also scored when its thinking is cut at smaller token
budgets (the answer forced after each cut); a token's advantage sums the budgets whose prefix holds
it, each budget's baseline mixing the same completion's previous budget with the group mean.

GUESS: budgets of 6, 12 and 18 tokens below the whole completion (of the default 24), a uniform prior
over the four, an 8-token greedy forced answer after "</think>", mixing weight 0.5.
"""

from grpozoo.recipes import Recipe, register_recipe

BRPO = register_recipe(
    Recipe(
        name="brpo",
        citation='Qi et al. 2025, "Optimizing Anytime Reasoning via Budget Relative Policy Optimization"'
        " (arXiv:2505.13438)",
        changes="each completion also scored at smaller thinking budgets (answer forced after each cut); "
        "dense per-token advantages summed over the budgets that hold the token, budget-relative baseline",
        config={
            "algorithm": {
                "advantage": {"name": "anytime_brpo", "params": {"budgets": [6, 12, 18]}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
