"""ASPO: a behaviour term added to the advantage of correct rollouts, clipped to a fraction
k < 1 of |A| so that correctness always dominates.

The paper's behaviour is an early first code call; without tools the default feature prefers
shorter correct answers. Set ``feature: first_marker`` with a ``marker`` (e.g. "```python"), or a
reward part's name, to shape by something else.
"""

from grpozoo.recipes import Recipe, register_recipe

ASPO = register_recipe(
    Recipe(
        name="aspo",
        citation='Lin & Xu 2025, "Understanding Tool-Integrated Reasoning" (arXiv:2508.19201)',
        changes="A' = A + clip(δ·f̃, −k|A|, k|A|) on correct rollouts (f̃: behaviour feature standardised "
        "in the group)",
        config={
            "algorithm": {
                "advantage": {"name": "aspo", "params": {"feature": "neg_length", "delta": 0.5, "k": 0.5}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            }
        },
    )
)
