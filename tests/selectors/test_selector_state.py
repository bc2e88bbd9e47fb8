"""Every selector's state (statistics and random generator) survives a checkpoint round trip, so a
resumed run selects exactly what an uninterrupted run would."""

import io

import pytest
import torch

from grpozoo.registry import selectors

PARAMS = {"riskpo_bundles": {"bundle_size": 2}}


def drive(selector, batch_of, steps: int, k: int = 4) -> list:
    """``steps`` of select (and allocate), then an update with deterministic outcomes."""
    picks = []
    for step in range(steps):
        rows = selector.next(k)
        counts = selector.allocate(rows, 3) if hasattr(selector, "allocate") else [3] * len(rows)
        picks.append((rows, counts))
        outcomes = {
            row: [float((row + step + j) % 3 == 0) for j in range(n)]
            for row, n in zip(rows, counts, strict=True)
        }
        selector.update(rows, batch_of(list(outcomes.items())))
    return picks


@pytest.mark.parametrize("name", selectors.names())
def test_a_restored_selector_continues_exactly_like_the_original(name, groups_batch):
    params = PARAMS.get(name, {})
    original = selectors.get(name)(30, seed=7, **params)
    drive(original, groups_batch, steps=3)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)  # as the checkpoint stores it
    buffer.seek(0)
    restored = selectors.get(name)(30, seed=999, **params)  # a different seed: the state must win
    restored.load_state_dict(torch.load(buffer, weights_only=False))
    assert drive(restored, groups_batch, steps=4) == drive(original, groups_batch, steps=4)


@pytest.mark.parametrize("name", selectors.names())
def test_selectors_are_reproducible_from_the_seed(name, groups_batch):
    params = PARAMS.get(name, {})
    runs = [drive(selectors.get(name)(30, seed=3, **params), groups_batch, steps=3) for _ in range(2)]
    assert runs[0] == runs[1]
