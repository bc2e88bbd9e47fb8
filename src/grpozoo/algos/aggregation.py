"""Loss aggregation: ``(loss [B,T], mask [B,T], group_ids [B], totals) -> scalar``.

Every aggregation is a *sum of per-row contributions* whose normaliser comes from ``totals``
(counted once over the whole step's batch), so splitting a batch into micro-batches or processes
never changes the loss or its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from grpozoo.registry import aggregations


@dataclass(frozen=True)
class BatchTotals:
    """Counts over the whole step's batch that aggregations normalise by."""

    num_tokens: int  # masked completion tokens in the batch
    num_sequences: int  # completions in the batch
    max_completion_tokens: int  # the generation budget (Dr.GRPO's constant)
    group_tokens: dict[int, int] = field(default_factory=dict)  # group id -> masked tokens in that group

    @property
    def num_groups(self) -> int:
        return len(self.group_tokens)

    @classmethod
    def of(cls, mask: torch.Tensor, max_completion_tokens: int, group_ids: torch.Tensor | None = None) -> BatchTotals:
        group_ids = torch.arange(mask.shape[0]) if group_ids is None else group_ids
        per_row = mask.sum(dim=1)
        group_tokens: dict[int, int] = {}
        for g, n in zip(group_ids.tolist(), per_row.tolist(), strict=True):
            group_tokens[int(g)] = group_tokens.get(int(g), 0) + int(n)
        return cls(int(mask.sum().item()), int(mask.shape[0]), max_completion_tokens, group_tokens)


@aggregations.register("token_mean")
def token_mean(loss: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Token-mean over the whole batch (DAPO, Yu et al. 2025): ``Σ loss·mask / Σ mask``.
    Shapes: ``[B, T]`` -> scalar."""
    return (loss * mask).sum() / max(totals.num_tokens, 1)


@aggregations.register("token_sum")
def token_sum(loss: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Plain sum over every masked token, the REINFORCE estimator's own form (Williams 1992): long
    completions weigh more and the scale grows with the batch. Shapes: ``[B, T]`` -> scalar."""
    return (loss * mask).sum()


@aggregations.register("sequence_mean")
def sequence_mean(loss: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Mean over sequences of each sequence's token-mean (GRPO, Shao et al. 2024).
    Shapes: ``[B, T]`` -> scalar."""
    per_sequence = (loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_sequence.sum() / max(totals.num_sequences, 1)


@aggregations.register("sequence_mean_token_sum")
def sequence_mean_token_sum(
    loss: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, totals: BatchTotals
) -> torch.Tensor:
    """Mean over sequences of each sequence's token-sum: every token weighs the same, and the scale
    does not grow with the number of sequences (the unbiased form discussed by Liu et al. 2025,
    Dr.GRPO). Shapes: ``[B, T]`` -> scalar."""
    return (loss * mask).sum() / max(totals.num_sequences, 1)


@aggregations.register("constant_normalizer")
def constant_normalizer(
    loss: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, totals: BatchTotals
) -> torch.Tensor:
    """Dr.GRPO (Liu et al. 2025): token-sum divided by a constant ``num_sequences × max_completion_tokens``, so a
    sequence's weight does not depend on its own length. Shapes: ``[B, T]`` -> scalar."""
    return (loss * mask).sum() / max(totals.num_sequences * totals.max_completion_tokens, 1)


@aggregations.register("per_prompt_mean")
def per_prompt_mean(loss: torch.Tensor, mask: torch.Tensor, group_ids: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Mean over prompts (groups) of each group's token-mean: every prompt weighs the same whatever
    its completions' lengths (REAL, Zhai et al. 2026: ``Σ_q loss_q / #questions`` when a group-level
    loss puts ``loss_q`` on every token of its group). Shapes: ``[B, T]``, ``group_ids [B]`` -> scalar."""
    group_size = torch.tensor([totals.group_tokens[int(g)] for g in group_ids], dtype=loss.dtype, device=loss.device)
    per_row = (loss * mask).sum(dim=1) / group_size.clamp(min=1)
    return per_row.sum() / max(totals.num_groups, 1)
