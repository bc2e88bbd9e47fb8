"""Reg-GRPO (DeepVideo-R1): the clipped surrogate replaced by a squared regression of the
group-normalised sequence log-ratio onto the GRPO advantage; no clip, no min.

GUESS: population variance with eps 1e-4 in the normalisation; the mean over sequences. The paper's
difficulty-aware input augmentation and its video setting are not part of this recipe.
"""

from grpozoo.recipes import Recipe, register_recipe

REG_GRPO = register_recipe(
    Recipe(
        name="reg_grpo",
        citation='Park et al. 2025, "DeepVideo-R1: Video Reinforcement Fine-Tuning via Difficulty-aware'
        ' Regressive GRPO" (arXiv:2506.07464)',
        changes="loss (Â − ψ)², ψ the group-normalised sequence log-ratio: regression onto the advantage, "
        "no clip, mean over sequences",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "reg_grpo", "params": {"eps": 1e-4}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
