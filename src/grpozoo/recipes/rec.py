"""REC: group-relative REINFORCE whose clipping is a token mask (REC-OneSide-NoIS).

The mask only acts once the policy has moved from the one that sampled, so the recipe takes two
optimiser steps per batch (GUESS; the paper studies stale, off-policy batches)."""

from grpozoo.recipes import Recipe, register_recipe

REC = register_recipe(
    Recipe(
        name="rec",
        citation='Yao et al. 2025, "Group-Relative REINFORCE Is Secretly an Off-Policy Algorithm:'
        ' Demystifying Some Myths About GRPO and Its Friends" (arXiv:2509.24203)',
        changes="REINFORCE with the ratio detached; tokens outside the one-sided clip range are masked, not clipped",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "none"}},
                "loss": {
                    "name": "rec",
                    "params": {"clip_mode": "one_side", "eps_low": 0.2, "eps_high": 0.2, "weight": "none"},
                },
                "aggregation": "token_mean",
                "num_iterations": 2,
            }
        },
    )
)
