"""The one batch type that travels the pipeline.

Shapes: B completions (``prompts_per_step × group_size``), P prompt tokens (left-padded),
T completion tokens (right-padded), G completions per group.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any, TypeVar

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
    values: torch.Tensor | None = None  # [B, T+1] a learned critic's V(s_t), s_t = prompt + t completion tokens
    probe_values: torch.Tensor | None = None  # [B] a learned probe's predicted reward of each whole rollout
    step_flags: torch.Tensor | None = None  # [B, T] 1.0 on the tokens of steps a critic flagged as wrong
    answer_logprobs: torch.Tensor | None = None  # [B, T+1] log π(gold answer | prompt, first t tokens,
    #   answer template) at segment boundaries, NaN elsewhere (a process signal by teacher forcing)
    budget_rewards: torch.Tensor | None = None  # [B, T+1] reward of the completion cut after t tokens,
    #   its answer forced (anytime reasoning budgets); NaN where not computed
    token_weights: torch.Tensor | None = None  # [B, T] product of the token-weight components
    completion_token_texts: list[list[str]] | None = None  # [B][L_i] the text of each completion token
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B] per-row values an
    #   advantage estimator hands to later components (e.g. COPO's global advantage and blend weight)
    hint_level: torch.Tensor | None = field(default=None, metadata={"fill": 0})  # [B] long: 0 sampled
    #   without a hint, k >= 1 with the k-th hint level in the prompt (Scaf-GRPO, GHPO, Guide)
    off_policy: torch.Tensor | None = field(default=None, metadata={"fill": False})  # [B] bool: sampled
    #   under another context than the learner's prompt (a hint); the loss's old log-probs there are
    #   the sampler's ``sampling_logprobs`` (Guide-GRPO's off-policy ratio)
    tool_mask: torch.Tensor | None = field(default=None, metadata={"fill": 0})  # [B, T] 1 on the tokens
    #   an environment wrote into a multi-turn completion (tool output): in the sequence, never learned
    demonstration: torch.Tensor | None = field(default=None, metadata={"fill": False})  # [B] bool: the
    #   completion is the task row's demonstration (worked solution), not a sample (GRAO's reference)
    privileged_prompts: list[list[int]] | None = None  # [B] token ids of the prompt with the row's
    #   demonstration in its last user message: a self-teacher's context (SRPO's self-distillation)
    teacher_logprobs: torch.Tensor | None = None  # [B, T] log-probs of the completion tokens under the
    #   policy given the privileged prompt (no gradient)
    teacher_entropies: torch.Tensor | None = None  # [B, T] that teacher's entropy at each token
    environment_parts: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> [B] what the
    #   environment of a multi-turn rollout reports (tool calls, why the episode ended), logged as reward parts
    soft_mask: torch.Tensor | None = field(default=None, metadata={"fill": 0})  # [B, T] 1 on the soft
    #   steps of a soft-thinking rollout (SofT-GRPO): the model read a mixture of the k token embeddings
    #   soft_ids [B, T, k] with weights soft_weights [B, T, k]; the step's action is the Gumbel noise
    #   soft_noise [B, T, k] on the sampler's log-probs soft_logprobs [B, T, k] of those tokens
    #   (grpozoo.generation.soft_engine); completion_ids holds the Gumbel-max token there
    soft_ids: torch.Tensor | None = None
    soft_weights: torch.Tensor | None = None
    soft_noise: torch.Tensor | None = None
    soft_logprobs: torch.Tensor | None = None
    weight_version: torch.Tensor | None = None  # [B] long: the policy version that sampled each row
    #   (the number of optimiser steps whose weights the engine had when it sampled)
    step: int = 0  # the training step this batch belongs to (1-based)
    total_steps: int = 1
    state: dict[str, Any] = field(default_factory=dict, metadata={"per_row": False})

    @property
    def batch_size(self) -> int:
        return self.completion_ids.shape[0]

    @property
    def completion_lengths(self) -> torch.Tensor:
        return self.completion_mask.sum(dim=1)

    @property
    def own_samples(self) -> torch.Tensor:
        """``[B]`` bool: the rows the policy sampled from its own prompt (no hint, no demonstration),
        which the step's reward and accuracy metrics describe."""
        own = torch.ones(self.batch_size, dtype=torch.bool)
        if self.hint_level is not None:
            own &= self.hint_level == 0
        if self.demonstration is not None:
            own &= ~self.demonstration.bool()
        return own

    @property
    def action_mask(self) -> torch.Tensor:
        """``[B, T]`` 1 on the tokens the policy chose: the completion mask without tool output."""
        if self.tool_mask is None:
            return self.completion_mask
        return self.completion_mask * (1 - self.tool_mask.to(self.completion_mask.dtype))

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

    @classmethod
    def concat(cls, batches: list[Rollouts], renumber_groups: bool = True) -> Rollouts:
        """One batch holding the rows of ``batches`` in order (several generation rounds of a step).

        Prompt tensors are left-padded and per-token tensors right-padded to the widest batch (with 0;
        ``segment_values`` with NaN). With ``renumber_groups`` every batch's group ids are shifted
        past the previous batches' so groups stay distinct; without it the ids are kept as they are
        (rows added to existing groups). A field that is None in some batches and set in others is
        filled where it has a default (``hint_level`` 0, ``off_policy`` False), else an error.
        ``state``, ``step`` and ``total_steps`` come from the first batch.
        """
        if not batches:
            raise ValueError("Rollouts.concat: no batches to concatenate")
        if len(batches) == 1:
            return batches[0]
        first = batches[0]
        group_ids = []
        offset = 0
        for batch in batches:
            ids = batch.group_ids
            if renumber_groups and ids.numel():
                ids = ids - ids.min() + offset
                offset = int(ids.max()) + 1
            group_ids.append(ids)
        updates: dict[str, Any] = {"group_ids": torch.cat(group_ids)}
        for f in fields(cls):
            if f.name == "group_ids" or not f.metadata.get("per_row", True):
                continue
            values = [getattr(b, f.name) for b in batches]
            if all(v is None for v in values):
                continue
            if any(v is None for v in values):
                if "fill" not in f.metadata:
                    raise ValueError(
                        f"Rollouts.concat: field {f.name!r} is set in some batches and None in others; "
                        f"set it in every batch or in none"
                    )
                like = next(v for v in values if v is not None)
                values = [  # per row [b], or per token [b, T]
                    torch.full((b.batch_size, *([b.completion_ids.shape[1]] if like.dim() == 2 else [])),
                               f.metadata["fill"], dtype=like.dtype) if v is None else v
                    for b, v in zip(batches, values, strict=True)
                ]
            if isinstance(values[0], torch.Tensor):
                updates[f.name] = _cat_padded(values, f.name)
            elif isinstance(values[0], list):
                updates[f.name] = [item for v in values for item in v]
            elif isinstance(values[0], dict):
                keys = set(values[0])
                if any(set(v) != keys for v in values):
                    raise ValueError(
                        f"Rollouts.concat: field {f.name!r} has different keys across batches: "
                        f"{[sorted(v) for v in values]}"
                    )
                updates[f.name] = {k: _cat_padded([v[k] for v in values], f"{f.name}[{k!r}]") for k in keys}
        return replace(first, **updates)


T = TypeVar("T")


def required(value: T | None, name: str, reader: str) -> T:
    """``value``, the batch's optional field ``name`` (e.g. ``ctx.entropies``); a clear error naming
    ``reader``, what reads it, when the batch does not carry it."""
    if value is None:
        raise ValueError(f"{reader} reads {name}, which this batch does not carry")
    return value


LEFT_PADDED = ("prompt_ids", "prompt_mask")


def _cat_padded(values: list[torch.Tensor], name: str) -> torch.Tensor:
    """Concatenate along rows, padding dimension 1 to the widest (left for prompts, right otherwise)."""
    dims = {v.dim() for v in values}
    if len(dims) != 1:
        raise ValueError(f"Rollouts.concat: field {name!r} has shapes {[tuple(v.shape) for v in values]}")
    if dims == {1}:
        return torch.cat(values)
    width = max(v.shape[1] for v in values)
    pad_value = float("nan") if name in ("segment_values", "answer_logprobs", "budget_rewards") else 0
    padded = []
    for v in values:
        missing = width - v.shape[1]
        if missing:
            pad = torch.full((v.shape[0], missing, *v.shape[2:]), pad_value, dtype=v.dtype)
            v = torch.cat([pad, v] if name in LEFT_PADDED else [v, pad], dim=1)
        padded.append(v)
    return torch.cat(padded)
