"""XRPO, its rollout allocator: GRPO with the step's rollouts given preferentially to prompts whose
reward confidence interval would shrink most, plus a UCB exploration bonus.

The paper's in-context seeding of unsolved prompts and its novelty-aware advantage sharpening are
not part of this recipe.
"""

from grpozoo.recipes import Recipe, register_recipe

XRPO = register_recipe(
    Recipe(
        name="xrpo",
        citation='Bamba et al. 2025, "XRPO: Pushing the limits of GRPO with Targeted Exploration and'
        ' Exploitation" (arXiv:2510.06672)',
        changes="rollouts per prompt by priority [h(n)−h(n+1)] + λ√(log(1+T)/n) (t-interval half-width h), "
        "same total budget (selector xrpo)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {"name": "xrpo", "params": {}},
            }
        },
    )
)
