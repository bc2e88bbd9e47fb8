"""GRAO: the group's samples learn by their advantage-weighted likelihood, the task row's
demonstration by imitation, and samples that beat the demonstration's reward are pushed above it.

GUESS: the loss's weights (imitation 1, alignment 1, logistic β 1), the mean over sequences;
the demonstration is the task row's worked solution and joins its group's advantage statistics.
"""

from grpozoo.recipes import Recipe, register_recipe

GRAO = register_recipe(
    Recipe(
        name="grao",
        citation='Wang et al. 2025, "Learning to Align, Aligning to Learn: A Unified Approach for'
        ' Self-Optimized Alignment" (arXiv:2508.07750)',
        changes="the task row's worked solution joins each group: SFT on it plus advantage-weighted likelihood "
        "of the samples and a pairwise push of samples that outscore it; needs a task with solutions",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "grao", "params": {"imitation_coef": 1.0, "alignment_coef": 1.0, "beta": 1.0}},
                "aggregation": "sequence_mean",
            }
        },
    )
)
