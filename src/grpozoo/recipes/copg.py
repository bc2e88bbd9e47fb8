"""CoPG: every pair of a group's completions regresses its regularised reward gap to zero, a
contrastive policy gradient without importance ratios."""

from grpozoo.recipes import Recipe, register_recipe

COPG = register_recipe(
    Recipe(
        name="copg",
        citation='Flet-Berliac et al. 2024, "Contrastive Policy Gradient: Aligning LLMs on sequence-level'
        ' scores in a supervised-friendly fashion" (arXiv:2406.19185)',
        changes="squared loss [R(y) − R(y') − β(log π/π_ref(y) − log π/π_ref(y'))]² over every pair of a group "
        "(β = 0.1) instead of the clipped surrogate; no importance ratio; mean over prompts",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "copg", "params": {"beta": 0.1}},
                "aggregation": "per_prompt_mean",
                "kl": {"coef": 0.0},
            }
        },
    )
)
