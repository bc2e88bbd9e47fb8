"""SofT-GRPO: soft-thinking rollouts (Gumbel-noised embedding mixtures) scored by a
Gumbel-reparameterised ratio, with GRPO's advantages and clipped surrogate."""

from grpozoo.recipes import Recipe, register_recipe

SOFT_GRPO = register_recipe(
    Recipe(
        name="soft_grpo",
        citation='Zheng and Lee 2025, "SofT-GRPO: Surpassing Discrete-Token LLM Reinforcement Learning via '
        'Gumbel-Reparameterized Soft-Thinking Policy Optimization" (arXiv:2511.06411)',
        changes="soft-thinking rollouts for the first N completion tokens (mixtures of the top-k embeddings "
        "with Gumbel noise), their ratio the Gumbel density of the reparameterised noise",
        config={
            # GUESS: 4 soft steps at the start of the completion stand for the thinking part (raise
            # rollout.soft_thinking.tokens for longer thinking); tau 0.1 and top-k 15 (the paper tunes both)
            "rollout": {"soft_thinking": {"tokens": 4, "tau": 0.1, "top_k": 15}},
            "algorithm": {
                "advantage": {"name": "grpo", "params": {"scale": "group"}},
                "loss": {"name": "ppo_clip", "params": {"eps_low": 0.2, "eps_high": 0.2}},
                "aggregation": "token_mean",
            },
        },
    )
)
