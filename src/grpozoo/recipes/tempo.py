"""TEMPO: GRPO plus temporal-difference corrections at the branch points of the prefix tree
of each group's completions (token-level credit without a critic)."""

from grpozoo.recipes import Recipe, register_recipe

TEMPO = register_recipe(
    Recipe(
        name="tempo",
        citation='Tran, Yao & Yu 2025, "Exploiting Tree Structure for Credit Assignment in RL Training of'
        ' LLMs" (arXiv:2509.18314)',
        changes="token advantage A_i + V(s_{t+1}) − V(s_t) at prefix-tree branch points (V: mean normalised "
        "reward through the prefix)",
        config={
            "algorithm": {
                "advantage": {"name": "tempo", "params": {"value_scale": "normalised", "delta_coef": 1.0}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
