"""Guided rollouts for all-fail groups: which groups get hints, what the hints are, which rollouts
the hinted ones replace, and the behaviour log-probs of an off-policy (hinted) row.

The trainer's :class:`~grpozoo.training.guided.Guidance` samples and scores; these functions
decide. Three methods share them:

- Scaf-GRPO (Zhang et al. 2025, "Scaf-GRPO: Scaffolded Group Relative Policy Optimization
  for Enhancing LLM Reasoning"): tiered hints (concept → plan → concrete steps) from a dataset column,
  escalated tier by tier until a hinted rollout succeeds; that success replaces one failed rollout.
- GHPO (Liu et al. 2025, "GHPO: Adaptive Guidance for Stable and Efficient LLM Reinforcement
  Learning"): the hint is a prefix of the reference solution, ``⌈ω·len(solution tokens)⌉`` tokens, ω
  growing 0.25 → 0.5 → 0.75 until a rollout succeeds; the hinted group replaces the group.
- Guide-GRPO (Nath et al. 2025, "Adaptive Guidance Accelerates Reinforcement Learning of Reasoning
  Models"): hinted rollouts replace part of the group and learn under the *unhinted* prompt, with
  the hinted sampler's log-probs as the ratio's denominator.

The hint always goes into the prompt (the conditioning context), never into the completion: hint
tokens are prompt tokens, so they never receive loss (their completion mask does not exist).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Literal

import torch

from grpozoo.algos.groups import group_max

Mode = Literal["tiered_hints", "solution_prefix"]


def guidance_active(step: int, total_steps: int, start_fraction: float) -> bool:
    """False during Scaf-GRPO's guidance-free opening: the first ``⌈start_fraction·total_steps⌉``
    steps (1-based ``step``). ``start_fraction=0`` guides from the first step."""
    return step - 1 >= math.ceil(start_fraction * total_steps - 1e-9)


def stuck_groups(
    scores: torch.Tensor, group_ids: torch.Tensor, success_threshold: float = 1.0
) -> torch.Tensor:
    """``[B]`` bool: the rows of groups where no rollout succeeded (every score below
    ``success_threshold``; NaN counts as a failure). A group with any success is not stuck, so it is
    never modified (Scaf-GRPO, GHPO, Guide-GRPO)."""
    values = torch.nan_to_num(scores.double(), nan=-math.inf)
    return group_max(values, group_ids) < success_threshold


def prefix_length(num_tokens: int, fraction: float) -> int:
    """GHPO's hint length: ``⌈ω·n⌉`` tokens of an ``n``-token solution."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"solution prefix fraction must lie in [0, 1], got {fraction}")
    return min(num_tokens, math.ceil(fraction * num_tokens - 1e-9))


def hint_levels(
    value: Any,
    mode: Mode,
    fractions: Sequence[float] = (0.25, 0.5, 0.75),
    encode: Callable[[str], list[int]] | None = None,
    decode: Callable[[list[int]], str] | None = None,
) -> list[str]:
    """The hints of one task row, from the least to the most concrete (level 1, 2, …).

    ``tiered_hints``: ``value`` is a list of hints (or one hint as a string), empty ones skipped.
    ``solution_prefix``: ``value`` is the solution text (of a list, its last, most concrete entry);
    level ``i`` is its first ``⌈fractions[i]·n⌉`` tokens (``encode``/``decode``: the tokenizer's).
    A row without hints (None, empty) has no levels and is not guided.
    """
    if value is None:
        return []
    tiers = [value] if isinstance(value, str) else list(value)
    if not all(isinstance(t, str) for t in tiers):
        raise ValueError(f"hints must be text or a list of texts, got {value!r}")
    tiers = [t for t in tiers if t.strip()]
    if mode == "tiered_hints":
        return tiers
    if mode != "solution_prefix":
        raise ValueError(f"guidance mode {mode!r} is not one of 'tiered_hints', 'solution_prefix'")
    if not tiers:
        return []
    if encode is None or decode is None:
        raise ValueError("hint_levels: solution_prefix needs the tokenizer's encode and decode")
    ids = encode(tiers[-1])
    return [decode(ids[: prefix_length(len(ids), f)]) for f in fractions]


def hinted_messages(messages: list[dict[str, str]], hint: str, template: str) -> list[dict[str, str]]:
    """A copy of the chat ``messages`` with ``template.format(hint=hint)`` appended to the last user
    message: the hint becomes part of the prompt."""
    out = [dict(m) for m in messages]
    users = [i for i, m in enumerate(out) if m["role"] == "user"]
    if not users:
        raise ValueError("hinted_messages: the prompt has no user message to add the hint to")
    out[users[-1]]["content"] += template.format(hint=hint)
    return out


def substitution(
    group_ids: torch.Tensor,
    hinted: torch.Tensor,
    success: torch.Tensor,
    stuck: torch.Tensor,
    max_replaced: int | None = 1,
    replace: Literal["successes", "all"] = "successes",
) -> torch.Tensor:
    """Which rows of a step's rollouts plus its hinted rollouts learn: ``use [N]`` bool.

    Inputs ``[N]``: ``group_ids`` (a hinted row carries the id of the group it may join), ``hinted``
    (sampled with a hint), ``success`` (scored a success), ``stuck`` (an unhinted row of an all-fail
    group). Only groups with a hinted success change (hinted rows of one group all come from the same,
    least concrete, level that produced a success; the caller stops escalating there):

    - ``replace="successes"`` (Scaf-GRPO): the group's hinted successes, at most ``max_replaced``,
      replace as many of its failed rollouts, the last ones first. Rewards ``[0,0,0,0]`` with one
      hinted success become ``[0,0,0,1]``.
    - ``replace="all"`` (GHPO, Guide-GRPO): the group's hinted rollouts, successes first, at most
      ``max_replaced`` (None: all), replace as many failed rollouts; with as many hinted rollouts as
      the group has, the whole group is the hinted group.

    Unhinted rows of groups without a hinted success, and of groups that are not stuck, are used
    unchanged; other hinted rows are not used. Group sizes never change.
    """
    if replace not in ("successes", "all"):
        raise ValueError(f"guidance replace={replace!r} is not one of 'successes', 'all'")
    if max_replaced is not None and max_replaced < 1:
        raise ValueError(f"guidance max_replaced must be >= 1 or None, got {max_replaced}")
    hinted, success, stuck = hinted.bool(), success.bool(), stuck.bool()
    use = ~hinted
    for group in group_ids[hinted & success].unique().tolist():
        in_group = group_ids == group
        failed = (in_group & ~hinted & stuck).nonzero().squeeze(1)
        candidates = (in_group & hinted & success).nonzero().squeeze(1)
        if replace == "all":
            others = (in_group & hinted & ~success).nonzero().squeeze(1)
            candidates = torch.cat([candidates, others])
        k = min(len(candidates), len(failed), max_replaced or len(candidates))
        if k == 0:
            continue
        use[failed[len(failed) - k :]] = False
        use[candidates[:k]] = True
    return use


def behaviour_logprobs(
    learner_old: torch.Tensor, sampling: torch.Tensor, off_policy: torch.Tensor | None
) -> torch.Tensor:
    """The ratio's denominator ``[B, T]``: the learner's own old log-probs, except on off-policy rows
    (sampled with a hint, learning without it), where it is the hinted sampler's log-probs, so that
    ``ρ_t = π_θ(y_t | q, y_<t) / π_old(y_t | q, h, y_<t)`` (Guide-GRPO). With an empty hint the two
    contexts are the same and so is the ratio."""
    if off_policy is None or not bool(off_policy.any()):
        return learner_old
    width = learner_old.shape[1]
    sampler = sampling[:, :width].to(device=learner_old.device, dtype=learner_old.dtype)
    return torch.where(off_policy.to(learner_old.device).unsqueeze(1), sampler, learner_old)
