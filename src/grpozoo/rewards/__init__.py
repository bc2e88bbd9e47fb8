"""Rewards: built-in verifiers and shaping, user functions, and their weighted combination.

A reward function has TRL's signature ``fn(completions, prompts, **columns) -> list[float | None]``
(sync or async); ``None`` means "no opinion" and is left out of the weighted sum.
"""

# register the built-in rewards (and the process signals' providers)
from grpozoo.rewards import (  # noqa: F401
    builtin,
    code,
    group_similarity,
    model_rewards,
    process,
    ranking,
    rubrics,
)
from grpozoo.rewards.combine import PolicyHandle, RewardError, RewardModel

__all__ = ["PolicyHandle", "RewardError", "RewardModel"]
