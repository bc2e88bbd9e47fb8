"""NFT: negative-aware fine-tuning, likelihood on correct answers and on an implicit
negative policy for wrong ones."""

from grpozoo.recipes import Recipe, register_recipe

NFT = register_recipe(
    Recipe(
        name="nft",
        citation='Chen et al. 2025, "Bridging Supervised Learning and Reinforcement Learning in Math'
        ' Reasoning" (arXiv:2505.18116)',
        changes="a supervised likelihood loss with the implicit negative policy instead of the clipped "
        "surrogate; prompts weighted by 1 − r̂; token sum over a constant",
        config={
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "nft", "params": {"prompt_weight": "one_minus_rate", "clamp_negative": 1.0}},
                "aggregation": "constant_normalizer",
            }
        },
    )
)
