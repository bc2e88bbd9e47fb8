"""Rewards: built-in verifiers and shaping, user functions, and their weighted combination.

A reward function has TRL's signature ``fn(completions, prompts, **columns) -> list[float | None]``
(sync or async); ``None`` means "no opinion" and is left out of the weighted sum.
"""

from grpozoo.rewards import builtin, code, model_rewards  # noqa: F401  (register the built-in rewards)
from grpozoo.rewards.combine import PolicyHandle, RewardError, RewardModel

__all__ = ["PolicyHandle", "RewardError", "RewardModel"]
