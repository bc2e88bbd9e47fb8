"""GRPO-Guard (text analogue): the log-ratio re-centred on the batch mean before PPO's clip, so a
drifted ratio distribution cannot keep positive-advantage tokens out of the upper clip. The paper
works on flow-matching image models; only the re-centring transfers."""

from grpozoo.recipes import Recipe, register_recipe

GRPO_GUARD = register_recipe(
    Recipe(
        name="grpo_guard",
        citation='Wang et al. 2025, "GRPO-Guard: Mitigating Implicit Over-Optimization in Flow Matching'
        ' via Regulated Clipping" (arXiv:2510.22319)',
        changes="log ρ minus its batch mean before the clip (matters from the second optimiser step on a "
        "batch: 2 per batch)",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "grpo_guard", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
                "num_iterations": 2,
            }
        },
    )
)
