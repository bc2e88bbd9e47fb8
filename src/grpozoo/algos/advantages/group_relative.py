"""Group-relative advantage estimators: a sample's reward against statistics of its own group."""

from __future__ import annotations

from typing import Literal

import torch

from grpozoo.algos.groups import group_mean, group_std
from grpozoo.registry import advantages


@advantages.register("grpo")
def grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: object = None,
    scale: Literal["group", "batch", "none"] = "group",
    eps: float = 1e-4,
) -> torch.Tensor:
    """GRPO group-relative advantage (P0 baseline in ALGORITHMS.md; Shao et al. 2024, DeepSeekMath).

    ``A_i = (r_i − mean_G r) / (std + eps)`` with the std of the group (``scale="group"``, GRPO),
    of the whole batch (``"batch"``), or no division at all (``"none"``, Dr.GRPO, Liu et al. 2025).
    Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``[B]``. A group whose rewards are all equal gets 0.
    """
    centred = rewards - group_mean(rewards, group_ids)
    if scale == "group":
        return centred / (group_std(rewards, group_ids) + eps)
    if scale == "batch":
        batch_std = rewards.std(unbiased=True) if rewards.numel() > 1 else rewards.new_zeros(())
        return centred / (batch_std + eps)
    if scale == "none":
        return centred
    raise ValueError(f"grpo advantage: scale={scale!r} is not one of 'group', 'batch', 'none'")
