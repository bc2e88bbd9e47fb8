"""MrGuard's staged curriculum (Yang et al. 2025): draws come only from buckets at or below the
current stage, and the stage never goes back."""

from __future__ import annotations

import random

import pytest
import torch

from grpozoo.registry import selectors
from grpozoo.selectors.staged import stage_buckets


def test_buckets_are_contiguous_slices_or_start_at_the_boundaries():
    assert stage_buckets(6, 3).tolist() == [0, 0, 1, 1, 2, 2]
    assert stage_buckets(7, 2).tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert stage_buckets(6, 3, boundaries=[1, 5]).tolist() == [0, 1, 1, 1, 1, 2]
    with pytest.raises(ValueError, match="increasing"):
        stage_buckets(6, 3, boundaries=[4, 2])


def test_the_sampler_draws_only_at_or_below_the_stage_and_the_stage_never_decreases(groups_batch):
    selector = selectors.get("staged_curriculum")(30, seed=0, stages=3, advance_at=0.7)
    bucket = stage_buckets(30, 3)
    scores = random.Random(0)
    stages = []
    for _ in range(60):
        rows = selector.next(4)
        assert len(set(rows)) == 4
        assert all(int(bucket[r]) <= selector.stage for r in rows)
        # scores rise and fall at random: a bad step must never send the curriculum back
        batch = groups_batch({r: [float(scores.random() < 0.6) for _ in range(4)] for r in rows})
        selector.update(rows, batch)
        stages.append(selector.stage)
    assert stages == sorted(stages)
    assert stages[-1] == 2  # every bucket was reached


def test_a_stage_unlocks_when_its_newest_bucket_is_learnt_or_its_time_is_up(groups_batch):
    selector = selectors.get("staged_curriculum")(6, seed=0, stages=3, advance_at=0.75)
    assert sorted(selector.next(2)) == [0, 1]  # stage 0 holds rows 0 and 1 only
    selector.update([0, 1], groups_batch({0: [1.0, 1.0], 1: [1.0, 0.0]}))  # 0.75 on the newest bucket
    assert selector.stage == 1
    selector.update([0, 1], groups_batch({0: [1.0, 1.0], 1: [1.0, 1.0]}))  # no group of bucket 1: no advance
    assert selector.stage == 1
    timed = selectors.get("staged_curriculum")(6, seed=0, stages=3, advance_at=1.0, steps_per_stage=2)
    for expected in (0, 1, 1, 2):
        timed.update([0], groups_batch({0: [0.0]}))
        assert timed.stage == expected


def test_the_stage_is_restored_from_the_selector_state(groups_batch):
    selector = selectors.get("staged_curriculum")(6, seed=0, stages=3, advance_at=0.5)
    selector.update([0], groups_batch({0: [1.0]}))
    saved = selector.state_dict()
    resumed = selectors.get("staged_curriculum")(6, seed=0, stages=3, advance_at=0.5)
    resumed.load_state_dict(saved)
    assert resumed.stage == 1 and resumed.next(3) == selector.next(3)


def test_too_many_prompts_for_the_open_rows_is_refused():
    selector = selectors.get("staged_curriculum")(6, seed=0, stages=3)
    with pytest.raises(ValueError, match="exceeds the 2 rows open"):
        selector.next(3)
    assert torch.equal(selector.unlocked(), torch.tensor([True, True, False, False, False, False]))
