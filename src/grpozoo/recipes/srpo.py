"""SRPO: correct rollouts learn by GRPO's clipped surrogate; failed rollouts by self-distillation
toward the same policy shown the task row's worked solution, token by token, weighted by the
teacher's confidence exp(−H).

GUESS: distillation coefficient 1, GRPO's clip range, "correct" = verifier score 1; the teacher's
log-probs of the sampled tokens only (the paper distils whole next-token distributions).
"""

from grpozoo.recipes import Recipe, register_recipe

SRPO = register_recipe(
    Recipe(
        name="srpo",
        citation='Li et al. 2026, "Unifying Group-Relative and Self-Distillation Policy Optimization via'
        ' Sample Routing" (arXiv:2604.02288)',
        changes="failed rollouts learn by self-distillation toward the policy given the worked solution "
        "(entropy-weighted), correct ones by GRPO; needs a task with solutions",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {
                    "name": "srpo",
                    "params": {"eps_low": 0.2, "eps_high": 0.2, "distill_coef": 1.0, "entropy_weighting": True},
                },
                "aggregation": "token_mean",
            }
        },
    )
)
