"""A builder of scored batches for selector tests: ``{task row: [score of each completion]}``."""

from __future__ import annotations

import pytest
import torch
from factories import make_rollouts


def batch_of(groups: dict[int, list[float]] | list[tuple[int, list[float]]], **fields):
    """One group per entry, in order: its task row and its completions' scores (reward = task score)."""
    items = list(groups.items()) if isinstance(groups, dict) else list(groups)
    rewards = [r for _, rs in items for r in rs]
    group_ids = [g for g, (_, rs) in enumerate(items) for _ in rs]
    row_ids = torch.tensor([row for row, rs in items for _ in rs], dtype=torch.long)
    return make_rollouts(rewards, group_ids, row_ids=row_ids, **fields)


@pytest.fixture
def groups_batch():
    return batch_of
