"""DAPO: decoupled clip, token-level loss without a KL term, dynamic sampling (groups
whose rewards are all the same are dropped and the batch refilled with fresh prompts), and
overlong filtering (truncated completions receive no loss).

DAPO's soft overlong punishment is the reward ``soft_overlong``; its ``max_length`` must be the
run's ``rollout.max_new_tokens``, so add it yourself, e.g.
``rewards: [{name: task}, {name: soft_overlong, params: {max_length: 512}}]``.
"""

from grpozoo.recipes import Recipe, register_recipe

DAPO = register_recipe(
    Recipe(
        name="dapo",
        citation='Yu et al. 2025, "DAPO: An Open-Source LLM Reinforcement Learning System at Scale"'
        " (arXiv:2503.14476)",
        changes="clip-higher (eps_low 0.2, eps_high 0.28), token-mean over the whole batch, no KL, dynamic "
        "sampling (zero-spread groups dropped, batch refilled), truncated completions get no loss",
        config={
            "algorithm": {
                "group_filters": [
                    {"name": "dynamic_sampling", "params": {"tol": 1e-6, "on": "reward"}},
                    {"name": "overlong_filter", "params": {"mode": "mask"}},
                ],
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.28}},
                "aggregation": "token_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
