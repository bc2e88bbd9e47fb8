"""DAPO (P0 baseline): decoupled clip and token-level loss, without a KL term.

Its data-side parts (dynamic sampling of groups with reward spread, the soft overlong penalty)
are group filters and reward shaping; this recipe carries the loss side.
"""

from grpozoo.recipes import Recipe, register_recipe

DAPO = register_recipe(
    Recipe(
        name="dapo",
        entry="P0",
        citation="Yu et al. 2025, DAPO: An Open-Source LLM Reinforcement Learning System at Scale (arXiv:2503.14476)",
        changes="clip-higher (eps_low 0.2, eps_high 0.28), token-mean over the whole batch, no KL",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
