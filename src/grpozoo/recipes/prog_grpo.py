"""ProGRPO / ARM: correct rollouts reweighted by inverse answer confidence, so over-confident
correct paths are reinforced less and low-probability correct paths more."""

from grpozoo.recipes import Recipe, register_recipe

PROG_GRPO = register_recipe(
    Recipe(
        name="prog_grpo",
        citation='Li et al. 2026, "Back to Basics: Revisiting Exploration in Reinforcement Learning for LLM'
        ' Reasoning via Generative Probabilities" (arXiv:2602.05281)',
        changes="positive advantages × (c̄/c_i)^γ (c = exp mean sampling log-prob), mean 1 over a group's "
        "correct rollouts",
        config={
            "algorithm": {
                "advantage": {"name": "prog_grpo", "params": {"gamma": 1.0}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
