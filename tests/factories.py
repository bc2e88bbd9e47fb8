"""Small hand-built batches for component tests."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.rollouts import Rollouts


def make_rollouts(
    rewards: list[float] | torch.Tensor,
    group_ids: list[int] | torch.Tensor | None = None,
    lengths: list[int] | None = None,
    num_tokens: int | None = None,
    **fields: Any,
) -> Rollouts:
    """A :class:`Rollouts` of ``len(rewards)`` completions with the given rewards, groups (default:
    one group) and completion lengths (default: all ``num_tokens`` long, 4 when not given).

    ``completion_ids`` default to ``100 + position`` on real tokens; any other field (``answers``,
    ``entropies``, ``old_logprobs``, ``completion_ids``, ``state``, …) can be passed by name.
    """
    rewards = torch.as_tensor(rewards, dtype=torch.float32)
    b = len(rewards)
    group_ids = torch.zeros(b, dtype=torch.long) if group_ids is None else torch.as_tensor(group_ids, dtype=torch.long)
    lengths = lengths if lengths is not None else [num_tokens or 4] * b
    t = num_tokens or max(lengths)
    positions = torch.arange(t)
    mask = (positions.unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)).long()
    defaults: dict[str, Any] = dict(
        prompt_ids=torch.ones(b, 2, dtype=torch.long),
        prompt_mask=torch.ones(b, 2, dtype=torch.long),
        completion_ids=(100 + positions).repeat(b, 1) * mask,
        completion_mask=mask,
        group_ids=group_ids,
        sampling_logprobs=torch.full((b, t), -1.0) * mask,
        truncated=torch.zeros(b, dtype=torch.bool),
        prompts=[f"prompt {int(g)}" for g in group_ids],
        completions=[f"completion {i}" for i in range(b)],
        examples=[{"answer": "1"} for _ in range(b)],
        rewards=rewards,
        task_scores=rewards.clone(),
        row_ids=group_ids.clone(),
        entropies=torch.full((b, t), 0.5) * mask,
        completion_token_texts=[[f"t{j}" for j in range(n)] for n in lengths],
        step=1,
        total_steps=10,
    )
    defaults.update(fields)
    return Rollouts(**defaults)


def batch_for(mask: torch.Tensor, **fields: Any) -> Rollouts:
    """The ``ctx`` of a component test that reads none of it: a batch of ``mask.shape[0]`` completions
    of ``mask.shape[1]`` tokens in one group, with rewards 0 (any field can be passed by name)."""
    return make_rollouts([0.0] * mask.shape[0], num_tokens=mask.shape[1], **fields)
