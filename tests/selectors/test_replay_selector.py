"""VL-Rethinker selective replay at the prompt level."""

from collections import Counter

import pytest
import torch

from grpozoo.registry import selectors
from grpozoo.selectors.replay import mean_abs_advantage


def test_mean_abs_advantage_by_hand():
    # [1, 0, 1, 0]: mean 0.5, Bessel std √(1/3); every |A| = 0.5·√3 = 0.8660
    assert mean_abs_advantage(torch.tensor([1.0, 0.0, 1.0, 0.0])) == pytest.approx(0.5 * 3**0.5, rel=1e-5)
    # [1, 0, 0, 0]: mean 0.25, std 0.5; |A| = 1.5, 0.5, 0.5, 0.5
    assert mean_abs_advantage(torch.tensor([1.0, 0.0, 0.0, 0.0])) == pytest.approx(0.75, rel=1e-5)
    assert mean_abs_advantage(torch.tensor([1.0, 1.0, 1.0])) == 0.0
    assert mean_abs_advantage(torch.tensor([0.3, 0.3 + 1e-9])) == 0.0  # within the tolerance
    assert mean_abs_advantage(torch.tensor([1.0])) == 0.0


def test_the_buffer_never_holds_a_prompt_with_zero_advantage(groups_batch):
    selector = selectors.get("vl_rethinker_ssr")(10)
    selector.update([], groups_batch({0: [1.0, 0.0], 1: [1.0, 1.0], 2: [0.0, 0.0], 3: [0.2, 0.2 + 1e-9]}))
    assert selector.buffer() == [0]
    selector.update([], groups_batch({0: [0.0, 0.0], 4: [0.0, 1.0, 1.0]}))  # row 0 has no signal now
    assert selector.buffer() == [4]
    assert all(selector.priority[r] > 0 for r in selector.buffer())


def test_replay_frequency_is_proportional_to_abs_advantage_to_the_alpha():
    selector = selectors.get("vl_rethinker_ssr")(5, seed=0, alpha=2.0)
    selector.priority[:3] = torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64)
    counts = Counter(selector.draw_replay(1)[0] for _ in range(20_000))
    weights = [0.25, 1.0, 4.0]
    assert [counts[r] / 20_000 for r in range(3)] == pytest.approx([w / 5.25 for w in weights], abs=0.01)
    assert counts[3] == counts[4] == 0


def test_a_step_with_uninformative_groups_is_topped_up_from_the_buffer(groups_batch):
    selector = selectors.get("vl_rethinker_ssr")(40, seed=0, max_replay_fraction=0.5)
    first = selector.next(4)
    assert selector.last_replayed == []
    outcomes = [[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [0.0, 0.0]]  # two groups without signal
    selector.update(first, groups_batch(dict(zip(first, outcomes, strict=True))))
    assert selector.shortfall == 2
    second = selector.next(4)
    assert len(second) == 4 and len(set(second)) == 4
    assert sorted(selector.last_replayed) == sorted(first[:2])  # the informative ones come back
    selector.update(second, groups_batch({row: [1.0, 0.0] for row in second}))
    selector.next(4)
    assert selector.last_replayed == []  # no shortfall, no replay


def test_replay_is_capped_by_the_fraction_and_the_capacity_keeps_the_newest(groups_batch):
    selector = selectors.get("vl_rethinker_ssr")(40, seed=0, capacity=2, max_replay_fraction=0.25)
    for row in (5, 6, 7):
        selector.update([], groups_batch({row: [1.0, 0.0], 30 + row: [0.0, 0.0]}))
    assert selector.buffer() == [6, 7]
    selector.shortfall = 4
    selector.next(4)
    assert len(selector.last_replayed) == 1  # ⌊0.25·4⌋
