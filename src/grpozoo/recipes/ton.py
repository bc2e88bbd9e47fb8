"""TON's second stage: GRPO where the model chooses between thinking and answering at once, rewarded
for the right answer and for keeping the think-or-not format (a think block, possibly empty, then the
answer).

The first stage is supervised fine-tuning on data whose reasoning was emptied at random
(``grpozoo.tasks.thought_dropout.thought_dropout``); grpozoo does not run it, so start from a model
that already writes think blocks. GUESS: the format reward's weight 0.5. The paper's setting is
vision-language; the mechanism here is text-only.
"""

from grpozoo.recipes import Recipe, register_recipe

TON = register_recipe(
    Recipe(
        name="ton",
        citation='Wang et al. 2025, "Think or Not? Selective Reasoning via Reinforcement Learning for'
        ' Vision-Language Models" (arXiv:2505.16854)',
        changes="after an SFT stage with thought dropout (reasoning emptied at random), GRPO rewards the "
        "answer plus a think-or-not format that accepts an empty think block",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
            "rewards": [{"name": "task"}, {"name": "think_or_not_format", "weight": 0.5}],
        },
    )
)
