"""RGR-GRPO: dense rubric rewards, a judge checking each criterion of the problem's rubric."""

from grpozoo.recipes import Recipe, register_recipe

RGR_GRPO = register_recipe(
    Recipe(
        name="rgr_grpo",
        citation='Bi et al. 2025, "Reward and Guidance through Rubrics: Promoting Exploration to Improve'
        ' Multi-Domain Reasoning" (arXiv:2511.12344)',
        changes="reward = weighted share of the rubric's criteria a judge finds satisfied (the row's rubric, "
        "else working / one final answer / the answer equals the reference); rubric-guided rewriting left out",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "rubric"}],
        },
    )
)
