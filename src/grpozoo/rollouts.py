"""The one batch type that travels the pipeline.

Shapes: B completions (``prompts_per_step × group_size``), P prompt tokens (left-padded),
T completion tokens (right-padded), G completions per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

import torch


@dataclass
class Rollouts:
    """A batch of sampled completions and everything later stages add to it.

    The generator fills the token fields and ``entropies``; the reward stage fills ``rewards``,
    ``reward_parts``, ``task_scores`` and ``answers``; the advantage stage fills ``advantages``;
    token-weight components fill ``token_weights``. Fields a component asks for by name in its
    ``needs`` attribute (``old_logprobs``, ``ref_logprobs``, ``baseline_rewards``) are filled by
    the trainer only for runs that use such a component.

    Components read this batch as their ``ctx``. ``state`` is the run's persistent component
    state (checkpointed; a component keeps its own key), shared by every sub-batch.
    """

    prompt_ids: torch.Tensor  # [B, P] left-padded
    prompt_mask: torch.Tensor  # [B, P] 1 on real prompt tokens
    completion_ids: torch.Tensor  # [B, T] right-padded
    completion_mask: torch.Tensor  # [B, T] 1 on generated tokens (EOS included)
    group_ids: torch.Tensor  # [B] long, the index of the prompt in this step
    sampling_logprobs: torch.Tensor  # [B, T] log-probs under the generator at sampling time
    truncated: torch.Tensor  # [B] bool, True when max_new_tokens ran out before EOS
    prompts: list[str]  # [B] the prompt text as the model saw it (chat template applied)
    completions: list[str]  # [B] decoded completion text
    examples: list[dict[str, Any]]  # [B] the task row behind each prompt (answer, metadata, …)
    rewards: torch.Tensor | None = None  # [B]
    reward_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B] (NaN = no opinion)
    task_scores: torch.Tensor | None = None  # [B] the task's verifier score, for accuracy
    advantages: torch.Tensor | None = None  # [B] or [B, T]
    old_logprobs: torch.Tensor | None = None  # [B, T]
    ref_logprobs: torch.Tensor | None = None  # [B, T]
    entropies: torch.Tensor | None = None  # [B, T] entropy of the sampling distribution per token
    answers: list[str | None] | None = None  # [B] the final answer the task extracts (None: none found)
    row_ids: torch.Tensor | None = None  # [B] long, the task row behind each sample (stable across steps)
    baseline_rewards: torch.Tensor | None = None  # [B] reward of a greedy completion of the same prompt
    segment_values: torch.Tensor | None = None  # [B, T+1] Monte-Carlo state values at segment boundaries
    token_weights: torch.Tensor | None = None  # [B, T] product of the token-weight components
    completion_token_texts: list[list[str]] | None = None  # [B][L_i] the text of each completion token
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B] per-row values an
    #   advantage estimator hands to later components (e.g. COPO's global advantage and blend weight)
    step: int = 0  # the training step this batch belongs to (1-based)
    total_steps: int = 1
    state: dict[str, Any] = field(default_factory=dict, metadata={"per_row": False})

    @property
    def batch_size(self) -> int:
        return self.completion_ids.shape[0]

    @property
    def completion_lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)

    def select(self, rows: torch.Tensor | list[int] | slice) -> Rollouts:
        """The sub-batch of the given rows (indices, a boolean mask ``[B]`` or a slice),
        every field sliced alike."""
        if isinstance(rows, torch.Tensor) and rows.dtype == torch.bool:
            rows = rows.nonzero().squeeze(1)
        if isinstance(rows, slice):
            indices = list(range(self.batch_size))[rows]
        else:
            indices = rows.tolist() if isinstance(rows, torch.Tensor) else list(rows)
        index = torch.as_tensor(indices, dtype=torch.long)
        updates: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                updates[f.name] = value.index_select(0, index)
            elif isinstance(value, list):
                updates[f.name] = [value[i] for i in indices]
            elif isinstance(value, dict) and f.metadata.get("per_row", True):
                updates[f.name] = {k: v.index_select(0, index) for k, v in value.items()}
        return replace(self, **updates)
