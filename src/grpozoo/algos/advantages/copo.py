"""COPO (Han et al. 2025, "COPO: Consistency-Aware Policy Optimization", arXiv:2508.04138): a local
GRPO advantage plus a
batch-wide *global* advantage built from each prompt's pass rate and answer consistency, and the
per-row blend weight the ``copo`` loss uses to mix the two."""

from __future__ import annotations

import math
from collections import Counter
from typing import Literal

import torch

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.groups import group_count, group_mean
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts


def answer_entropy_bits(
    answers: list[str | None] | None,
    group_ids: torch.Tensor,
    none_answers: Literal["one_cluster", "singletons"] = "one_cluster",
) -> torch.Tensor:
    """Entropy in bits of the distribution of final answers within each group, broadcast to ``[B]``.

    Answers are compared as strings after stripping whitespace. Completions without an answer
    (``None``) form one cluster of their own per group (``"one_cluster"``, so a group where no
    completion answered counts as consistent, H = 0), or each its own cluster (``"singletons"``,
    so missing answers count as maximally diverse). ``answers=None`` (the task extracts none)
    means every answer is missing.
    """
    ids = group_ids.tolist()
    answers = answers if answers is not None else [None] * len(ids)
    clusters: dict[int, Counter] = {}
    for row, (answer, group) in enumerate(zip(answers, ids, strict=True)):
        if answer is not None:
            key: tuple = ("answer", str(answer).strip())
        elif none_answers == "one_cluster":
            key = ("none",)
        elif none_answers == "singletons":
            key = ("none", row)
        else:
            raise ValueError(f"copo: none_answers={none_answers!r} is not 'one_cluster' or 'singletons'")
        clusters.setdefault(group, Counter())[key] += 1
    entropy = {}
    for group, counts in clusters.items():
        total = sum(counts.values())
        entropy[group] = -sum(c / total * math.log2(c / total) for c in counts.values())
    return torch.tensor([entropy[g] for g in ids], dtype=torch.float32)


def entropy_coefficient(entropy_bits: torch.Tensor, group_size: torch.Tensor) -> torch.Tensor:
    """COPO's consistency factor ``1 − λ·H`` with ``λ = (1 − 1/G)/log2 G``: 1 for a consistent
    group (H = 0), ``1/G`` when all G answers differ (H = log2 G). A single-member group gives 1."""
    g = group_size.to(entropy_bits.dtype)
    lam = torch.where(g > 1, (1.0 - 1.0 / g) / torch.log2(g.clamp(min=2)), torch.zeros_like(g))
    return 1.0 - lam * entropy_bits


@advantages.register("copo")
def copo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    entropy_factor: bool = True,
    k: float = 20.0,
    b: float = 0.5,
    blend: Literal["soft", "soft_with_forced"] = "soft",
    none_answers: Literal["one_cluster", "singletons"] = "one_cluster",
    eps: float = 1e-4,
) -> AdvantageOutput:
    """COPO advantages (Han et al. 2025, "COPO: Consistency-Aware Policy Optimization",
    arXiv:2508.04138). Shapes: ``rewards [B]``, ``group_ids [B]`` -> ``AdvantageOutput`` with
    ``advantages [B]`` (local) and ``extras`` ``copo_global_advantage [B]``, ``copo_weight [B]``.

    1. Local advantage: GRPO, ``(r − mean_G r)/(std_G r + eps)``.
    2. Global reward per prompt ``g_q = p̂_q·(1 − λ·H_q)`` with ``p̂_q`` the group's mean reward
       (its pass rate for 0/1 rewards), ``H_q`` the entropy (bits) of its extracted answers
       (``ctx.answers``, see :func:`answer_entropy_bits`) and ``λ = (1 − 1/G)/log2 G``;
       ``entropy_factor=False`` gives ``g_q = p̂_q``.
    3. Global advantage: ``(g_q − mean_q g)/(std_q g + eps)`` across the batch's prompts (one value
       per prompt, unbiased std; 0 with a single prompt), broadcast to the prompt's completions.
    4. Blend weight ``w = sigmoid(k·(H_q − b))`` (k = 20, b = 0.5): the ``copo`` loss uses
       ``(1 − w)·L_global + w·L_local``. ``blend="soft_with_forced"`` sets ``w = 0`` for a group
       whose local advantage is all zero (all rewards equal), so it learns from the global loss only.

    G=4 with answers [a,a,a,a]: H = 0, w = sigmoid(−10) ≈ 4.5e-5. Answers [a,b,c,d]: H = 2 bits,
    factor ``1 − λH`` = 0.25.
    """
    local = grpo_advantage(rewards, group_ids, ctx, scale="group", eps=eps)
    entropy = answer_entropy_bits(ctx.answers, group_ids, none_answers).to(rewards.device)
    pass_rate = group_mean(rewards, group_ids)
    global_reward = (
        pass_rate * entropy_coefficient(entropy, group_count(group_ids)) if entropy_factor else pass_rate
    )

    _, dense = torch.unique(group_ids, return_inverse=True)
    first_row: dict[int, int] = {}
    for row, group in enumerate(dense.tolist()):
        first_row.setdefault(group, row)
    per_prompt = global_reward[torch.tensor([first_row[g] for g in range(len(first_row))], dtype=torch.long)]
    spread = per_prompt.std() if per_prompt.numel() > 1 else per_prompt.new_zeros(())
    global_adv = ((per_prompt - per_prompt.mean()) / (spread + eps))[dense]

    weight = torch.sigmoid(k * (entropy - b))
    if blend == "soft_with_forced":
        weight = torch.where(group_mean(local.abs(), group_ids) == 0, torch.zeros_like(weight), weight)
    elif blend != "soft":
        raise ValueError(f"copo: blend={blend!r} is not 'soft' or 'soft_with_forced'")
    return AdvantageOutput(
        advantages=local,
        extras={
            "copo_global_advantage": global_adv.to(torch.float32),
            "copo_weight": weight.to(torch.float32),
        },
    )
