"""Loss aggregation: ``(loss [B,T], mask [B,T], totals) -> scalar``.

Every aggregation is a *sum of per-micro-batch contributions* whose normaliser comes from
``totals`` (counted once over the whole step's batch), so splitting a batch into micro-batches
or processes never changes the loss or its gradient.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from grpozoo.registry import aggregations


@dataclass(frozen=True)
class BatchTotals:
    """Counts over the whole step's batch that aggregations normalise by."""

    num_tokens: int  # masked completion tokens in the batch
    num_sequences: int  # completions in the batch
    max_completion_tokens: int  # the generation budget (Dr.GRPO's constant)

    @classmethod
    def of(cls, mask: torch.Tensor, max_completion_tokens: int) -> BatchTotals:
        return cls(int(mask.sum().item()), int(mask.shape[0]), max_completion_tokens)


@aggregations.register("token_mean")
def token_mean(loss: torch.Tensor, mask: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Token-mean over the whole batch (DAPO): ``Σ loss·mask / Σ mask``. Shapes: ``[B, T]`` -> scalar."""
    return (loss * mask).sum() / max(totals.num_tokens, 1)


@aggregations.register("sequence_mean")
def sequence_mean(loss: torch.Tensor, mask: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Mean over sequences of each sequence's token-mean (original GRPO). Shapes: ``[B, T]`` -> scalar."""
    per_sequence = (loss * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)
    return per_sequence.sum() / max(totals.num_sequences, 1)


@aggregations.register("constant_normalizer")
def constant_normalizer(loss: torch.Tensor, mask: torch.Tensor, totals: BatchTotals) -> torch.Tensor:
    """Dr.GRPO: token-sum divided by a constant ``num_sequences × max_completion_tokens``, so a
    sequence's weight does not depend on its own length. Shapes: ``[B, T]`` -> scalar."""
    return (loss * mask).sum() / max(totals.num_sequences * totals.max_completion_tokens, 1)
