"""Token- and segment-level advantages from the structure of the completions: a prefix tree of the
group's token sequences (TEMPO) and Monte-Carlo values at segment boundaries (segment SPO).

Shapes: ``rewards [B]``, ``group_ids [B]``, ``ctx.completion_ids / completion_mask /
sampling_logprobs [B, T]``, ``ctx.segment_values [B, T+1]``; the estimators return ``[B, T]``
(0 on padding).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.groups import group_mean
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts

# ---------------------------------------------------------------- TEMPO / Prefix-to-Tree


@dataclass
class PrefixTree:
    """A trie of token sequences. Node 0 is the root (the empty prefix); ``paths[i][t]`` is the node
    of sequence ``i``'s first ``t`` tokens (``t = 0 … L_i``); ``values[n]`` is the mean value of the
    sequences passing through node ``n``; ``children[n]`` its number of distinct next tokens."""

    paths: list[list[int]]
    values: list[float]
    children: list[int]


def prefix_tree(sequences: list[list[int]], values: list[float]) -> PrefixTree:
    """Prefix-to-Tree (TEMPO, Tran, Yao & Yu 2025): insert the sequences into a trie and give every
    node the mean of ``values`` over the sequences through it (so the root holds the mean of all
    values)."""
    edges: dict[tuple[int, int], int] = {}
    totals, counts, children = [0.0], [0], [0]
    paths = []
    for sequence, value in zip(sequences, values, strict=True):
        node, path = 0, [0]
        totals[0] += value
        counts[0] += 1
        for token in sequence:
            child = edges.get((node, token))
            if child is None:
                child = edges[(node, token)] = len(totals)
                totals.append(0.0)
                counts.append(0)
                children.append(0)
                children[node] += 1
            node = child
            totals[node] += value
            counts[node] += 1
            path.append(node)
        paths.append(path)
    return PrefixTree(paths, [t / max(c, 1) for t, c in zip(totals, counts, strict=True)], children)


def branch_deltas(tree: PrefixTree) -> list[list[float]]:
    """TEMPO's branch-gated TD terms (Tran, Yao & Yu 2025): for token ``t`` of sequence ``i``,
    ``δ_{i,t} = V(s_{t+1}) − V(s_t)`` when node ``s_t`` has at least two children, else 0."""
    return [
        [
            tree.values[path[t + 1]] - tree.values[path[t]] if tree.children[path[t]] >= 2 else 0.0
            for t in range(len(path) - 1)
        ]
        for path in tree.paths
    ]


@advantages.register("tempo")
def tempo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    value_scale: Literal["normalised", "raw"] = "normalised",
    delta_coef: float = 1.0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """TEMPO (Tran, Yao & Yu 2025, "Exploiting Tree Structure for Credit Assignment in RL Training of
    LLMs", arXiv:2509.18314): GRPO plus branch-gated TD corrections from the prefix tree
    of each group's completions.

    ``A_{i,t} = A^GRPO_i + delta_coef·δ_{i,t}`` with ``δ_{i,t} = V(s_{t+1}) − V(s_t)`` at branch
    points (a prefix with two or more distinct next tokens) and 0 elsewhere, so TEMPO equals GRPO
    at non-branch tokens. ``V(s)`` is the mean value of the group's completions through prefix
    ``s`` (tokens ``ctx.completion_ids`` under ``ctx.completion_mask``). GUESS: node values on the
    normalised reward scale (``value_scale="normalised"``: the GRPO advantage, so both terms share
    a scale; ``"raw"``: the reward) and ``delta_coef = 1``. Shapes: ``rewards [B]`` -> ``[B, T]``.
    """
    mask = ctx.completion_mask.bool()
    base = grpo_advantage(rewards, group_ids, scale="group", eps=eps).double()
    if value_scale == "normalised":
        node_value = base
    elif value_scale == "raw":
        node_value = rewards.double()
    else:
        raise ValueError(f"tempo: value_scale={value_scale!r} is not 'normalised' or 'raw'")
    deltas = torch.zeros(mask.shape, dtype=torch.float64)
    for group in torch.unique(group_ids).tolist():
        rows = (group_ids == group).nonzero().squeeze(1).tolist()
        sequences = [ctx.completion_ids[i][mask[i]].tolist() for i in rows]
        tree = prefix_tree(sequences, [node_value[i].item() for i in rows])
        for i, row_deltas in zip(rows, branch_deltas(tree), strict=True):
            positions = mask[i].nonzero().squeeze(1)
            deltas[i, positions] = torch.tensor(row_deltas, dtype=torch.float64)
    out = (base.unsqueeze(1) + delta_coef * deltas) * mask
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)


# ---------------------------------------------------------------- Segment Policy Optimization, chain


def cutpoints(sampling_logprobs: torch.Tensor, mask: torch.Tensor, cutpoint_logprob: float) -> torch.Tensor:
    """``[B, T]`` bool: real tokens sampled with log-prob below ``cutpoint_logprob`` (segment SPO's
    cutpoints)."""
    return mask.bool() & (sampling_logprobs < cutpoint_logprob)


def spo_chain_boundaries(
    sampling_logprobs: torch.Tensor, mask: torch.Tensor, cutpoint_logprob: float, every: int
) -> torch.Tensor:
    """SPO-chain segment boundaries (Guo et al. 2025), ``[B, T+1]`` bool over states (position p =
    the state after p completion tokens): True at 0, at each row's length ``L_i``, and right after every
    ``every``-th cutpoint token (the ``every``-th, ``2·every``-th, … cutpoint of the row)."""
    if every < 1:
        raise ValueError(f"segment_spo: every must be >= 1, got {every}")
    b, t = mask.shape
    cut = cutpoints(sampling_logprobs, mask, cutpoint_logprob)
    count = torch.cumsum(cut.long(), dim=1)
    boundaries = torch.zeros(b, t + 1, dtype=torch.bool)
    boundaries[:, 1:] = cut & (count % every == 0)
    boundaries[:, 0] = True
    boundaries[torch.arange(b), mask.bool().sum(dim=1)] = True
    return boundaries


def segment_advantages(values: torch.Tensor, boundaries: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Chain segment advantages (segment SPO, Guo et al. 2025), ``[B, T]``: token t of the segment
    between boundaries ``b_k ≤ t < b_{k+1}`` gets ``V(s_{k+1}) − V(s_k)``; 0 on padding.
    ``values [B, T+1]`` need only be finite at ``boundaries``, which must include 0 and each row's
    length."""
    t = mask.shape[1]
    positions = torch.arange(t + 1).expand_as(boundaries)
    start = torch.where(boundaries, positions, torch.zeros_like(positions)).cummax(dim=1).values[:, :t]
    end_index = torch.where(boundaries, positions, torch.full_like(positions, t))
    end = end_index.flip(1).cummin(dim=1).values.flip(1)[:, 1:]
    v = torch.where(boundaries, values.double(), torch.zeros_like(values, dtype=torch.float64))
    out = v.gather(1, end) - v.gather(1, start)
    return out * mask


def _boundaries_from_params(
    ctx: Rollouts, cutpoint_logprob: float = math.log(0.9), every: int = 5, **_: Any
) -> torch.Tensor:
    return spo_chain_boundaries(ctx.sampling_logprobs, ctx.completion_mask, cutpoint_logprob, every)


@advantages.register("segment_spo", needs={"segment_values"}, segment_boundaries=_boundaries_from_params)
def segment_spo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    cutpoint_logprob: float = math.log(0.9),
    every: int = 5,
    probability_mask: bool = True,
    num_continuations: int = 2,
) -> torch.Tensor:
    """Segment Policy Optimization, chain variant (Guo et al. 2025, "Segment Policy Optimization:
    Effective Segment-Level Credit Assignment in RL for Large Language Models", arXiv:2505.23564).

    Completions are cut into segments after every ``every``-th cutpoint (a token sampled with
    log-prob below ``cutpoint_logprob``), see :func:`spo_chain_boundaries`; the trainer estimates
    ``V`` at those states by Monte-Carlo continuations and hands them in ``ctx.segment_values
    [B, T+1]`` (NaN elsewhere). Every token of segment k gets ``A_k = V(s_{k+1}) − V(s_k)``; with
    ``probability_mask`` only the segment's cutpoint tokens keep it (the others get 0), so the
    advantages along a completion telescope to ``r − V(s_0)``.

    Position ``L_i`` (the end) is always the reward from ``rewards``; a missing ``V(s_0)`` (NaN at
    position 0) falls back to the group's mean reward; without ``ctx.segment_values`` it raises.
    ``num_continuations`` is
    read by the trainer (Monte-Carlo continuations per interior boundary), not here. GUESS:
    ``cutpoint_logprob = log 0.9``, ``every = 5`` (the paper's "int5") and ``num_continuations = 2``
    (cheap; the paper samples more). The boundary function is
    registered as the estimator's ``segment_boundaries(ctx, **params) -> bool [B, T+1]``.
    Shapes: ``rewards [B]`` -> ``[B, T]``.
    """
    mask = ctx.completion_mask.bool()
    b, t = mask.shape
    lengths = mask.sum(dim=1)
    given = ctx.segment_values
    if given is None:
        raise ValueError(
            "segment_spo needs ctx.segment_values (Monte-Carlo values the trainer fills on demand)"
        )
    values = given.double().clone()
    rows = torch.arange(b)
    start_value = values[:, 0]
    values[:, 0] = torch.where(torch.isnan(start_value), group_mean(rewards.double(), group_ids), start_value)
    values[rows, lengths] = rewards.double()
    beyond_end = torch.arange(t + 1).unsqueeze(0) > lengths.unsqueeze(1)
    boundaries = torch.isfinite(values) & ~beyond_end
    out = segment_advantages(values, boundaries, mask)
    if probability_mask:
        out = out * cutpoints(ctx.sampling_logprobs, mask, cutpoint_logprob)
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)

