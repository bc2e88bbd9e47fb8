"""Single-stream SPO: one completion per prompt, a persistent per-prompt Beta baseline and
global advantage normalisation instead of groups, and prompts sampled with priority
√(p̂(1−p̂)) + 0.05 from a Beta tracker with the same update and inputs (selector spo_priority).

The forgetting factor is fixed (rho = 0.96, the paper's value at zero divergence): its KL-adaptive
rule needs log-probs of each prompt's stored response under the current policy, which runs do not
compute.
"""

from grpozoo.recipes import Recipe, register_recipe

SPO_SINGLE_STREAM = register_recipe(
    Recipe(
        name="spo_single_stream",
        citation='Xu & Ding 2025, "Single-stream Policy Optimization" (arXiv:2509.13232)',
        changes="group size 1; A = r − p̂(prompt) from a persistent Beta tracker (ρ=0.96), normalised "
        "over the batch; prompts drawn ∝ √(p̂(1−p̂)) + 0.05",
        config={
            "algorithm": {
                "advantage": {"name": "spo_tracker", "params": {"rho": 0.96}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "selector": {
                    "name": "spo_priority",
                    "params": {"rho": 0.96, "floor": 0.05, "signal": "reward"},
                },
            },
            "rollout": {"group_size": 1},
        },
    )
)
