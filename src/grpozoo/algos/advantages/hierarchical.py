"""Hierarchical advantages over the parts of a multi-part completion: one group-relative advantage
for the main agent's part, another for the sub-agent trajectories, each normalised within its own
group (M-GRPO).

A multi-turn tool rollout (:mod:`grpozoo.generation.episodes`) is one completion whose model turns
are separated by the environment's output (``ctx.tool_mask``). Its parts, as :func:`completion_parts`
numbers them: each model turn that ends in a tool call (the environment answers after it) is one
sub-agent trajectory (one tool execution), numbered 1, 2, … in order; the final model turn, which the
environment does not answer (the answer), is the main agent's part 0. A single-turn completion is one
main part and no sub-trajectory.

Shapes: ``completion_mask, tool_mask [B, T]``; part ids ``[B, T]`` long.
"""

from __future__ import annotations

import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.registry import advantages
from grpozoo.rollouts import Rollouts

MAIN = 0
NO_PART = -1


def completion_parts(completion_mask: torch.Tensor, tool_mask: torch.Tensor | None) -> torch.Tensor:
    """Part id of every completion token ``[B, T]`` (long): ``k ≥ 1`` on the tokens of the k-th model
    turn followed by environment output (sub-trajectory k), ``0`` on the final model turn when no
    environment output follows it (the main part), ``−1`` on environment output and padding."""
    real = completion_mask.bool()
    tool = torch.zeros_like(real) if tool_mask is None else tool_mask.bool() & real
    action = real & ~tool
    previous = torch.cat([torch.zeros_like(action[:, :1]), action[:, :-1]], dim=1)
    segment = torch.cumsum((action & ~previous).long(), dim=1)  # 1-based model turn of each action token
    # a turn is a sub-trajectory when environment output comes after it
    tool_after = torch.flip(torch.cumsum(torch.flip(tool.long(), [1]), dim=1), [1]) > 0
    parts = torch.where(tool_after, segment, torch.full_like(segment, MAIN))
    return torch.where(action, parts, torch.full_like(segment, NO_PART))


def align_trajectories(counts: torch.Tensor, d: int, generator: torch.Generator) -> list[torch.Tensor]:
    """M-GRPO's trajectory alignment: for each rollout with ``n = counts[i]`` sub-trajectories, the
    indices (0-based, long) of exactly ``d`` of them: all ``n`` plus ``d − n`` drawn uniformly at random
    with replacement when ``n ≤ d`` (duplicates), ``d`` drawn without replacement when ``n > d`` (the
    rest dropped). A rollout without sub-trajectories gets none (nothing to duplicate).
    Shapes: ``counts [B]`` -> ``B`` tensors of ``d`` (or 0) indices."""
    if d < 1:
        raise ValueError(f"align_trajectories: d must be at least 1, got {d}")
    out = []
    for n in counts.tolist():
        n = int(n)
        if n == 0:
            out.append(torch.zeros(0, dtype=torch.long))
        elif n <= d:
            extra = torch.randint(n, (d - n,), generator=generator)
            out.append(torch.cat([torch.arange(n), extra]))
        else:
            out.append(torch.randperm(n, generator=generator)[:d])
    return out


@advantages.register("m_grpo")
def m_grpo_advantage(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    ctx: Rollouts,
    d: int = 2,
    outcome_weight: float = 1.0,
    sub_task_part: str | None = None,
    seed: int = 0,
    eps: float = 1e-4,
) -> torch.Tensor:
    """M-GRPO's hierarchical group-relative advantage (Hong et al. 2025, "Multi-Agent Deep Research:
    Training Multi-Agent Systems with M-GRPO", arXiv:2511.13288), on the parts of multi-turn tool
    rollouts (see the module docstring): token advantages ``[B, T]``.

    - Main agent: ``A_main = (r_i − mean_G r) / (std_G r + eps)`` over the group of prompt's rollouts,
      on the tokens of each rollout's main part.
    - Sub-agents: every rollout's sub-trajectories are aligned to exactly ``d``
      (:func:`align_trajectories`: duplicated at random when fewer, dropped at random when more;
      seeded by ``seed`` and the step). Each sub-trajectory's reward is
      ``outcome_weight·r_i + (1 − outcome_weight)·s_i``, with ``s_i`` the reward part
      ``sub_task_part`` (a sub-task evaluation; the outcome where it is None or NaN). These are
      normalised over all aligned sub-trajectories of the prompt's rollouts (the sub-agents' own
      group), and a sub-trajectory's tokens get its advantage times the number of times the
      alignment picked it (0 when dropped, 2 when duplicated once): the weight its copies would have
      in a batch that held them.

    Environment output and padding get 0. A completion without tool calls is one main part, so without
    tools this is GRPO on every token.
    GUESS: ``d = 2``; ``outcome_weight = 1`` (no sub-task evaluator ships with the tool
    environments); the multiplicity weighting in place of materialised copies. What differs: the paper
    trains a separate model per agent on separate servers exchanging scalar statistics; here one
    policy plays both roles, and a sub-trajectory is one model turn ending in a tool call.
    Shapes: ``rewards, group_ids [B]``, ``ctx.completion_mask, ctx.tool_mask [B, T]`` -> ``[B, T]``.
    """
    if not 0.0 <= outcome_weight <= 1.0:
        raise ValueError(f"m_grpo: outcome_weight must be in [0, 1], got {outcome_weight}")
    parts = completion_parts(ctx.completion_mask, ctx.tool_mask)
    r = rewards.double()
    out = torch.zeros(parts.shape, dtype=torch.float64)
    main = grpo_advantage(r, group_ids, scale="group", eps=eps)
    out = torch.where(parts == MAIN, main.unsqueeze(1), out)

    sub_reward = r
    if outcome_weight < 1.0:
        if sub_task_part is None or sub_task_part not in ctx.reward_parts:
            raise ValueError(
                f"m_grpo: outcome_weight={outcome_weight} mixes in the reward part sub_task_part="
                f"{sub_task_part!r}, which the batch does not carry (parts: {', '.join(sorted(ctx.reward_parts))})"
            )
        s = ctx.reward_parts[sub_task_part].double()
        sub_reward = outcome_weight * r + (1.0 - outcome_weight) * torch.where(s.isnan(), r, s)
    counts = parts.amax(dim=1).clamp(min=0)
    generator = torch.Generator().manual_seed(seed * 1_000_003 + ctx.step)
    chosen = align_trajectories(counts, d, generator)
    rows = torch.cat([torch.full((len(c),), i, dtype=torch.long) for i, c in enumerate(chosen)])
    if rows.numel() == 0:
        return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
    values, ids = sub_reward[rows], group_ids[rows]
    entry_advantage = grpo_advantage(values, ids, eps=eps)
    for entry, (i, k) in enumerate(zip(rows.tolist(), torch.cat(chosen).tolist(), strict=True)):
        on = parts[i] == k + 1
        out[i, on] += entry_advantage[entry]  # a duplicated sub-trajectory adds its advantage again
    return out.to(rewards.dtype if rewards.is_floating_point() else torch.float32)
