"""RiskPO bundles: each step's prompts are whole bundles of consecutive rows."""

import pytest
import torch

from grpozoo.algos.advantages.risk import paper_ids_and_scores
from grpozoo.registry import selectors


def test_bundles_are_consecutive_rows_and_cover_every_row_each_epoch():
    selector = selectors.get("riskpo_bundles")(12, seed=0, bundle_size=5)
    assert [selector.bundle(b) for b in range(3)] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9], [10, 11, 0, 1, 2]]
    epoch = [selector.next(5) for _ in range(3)]
    assert sorted(map(tuple, epoch)) == [(0, 1, 2, 3, 4), (5, 6, 7, 8, 9), (10, 11, 0, 1, 2)]
    assert [selector.next(5) for _ in range(3)] != epoch  # a new bundle order next epoch


def test_the_riskpo_advantage_bundles_exactly_the_selected_bundles():
    selector = selectors.get("riskpo_bundles")(40, seed=1, bundle_size=5)
    rows = selector.next(10)
    group_size = 3
    group_ids = torch.arange(len(rows)).repeat_interleave(group_size)
    papers, _ = paper_ids_and_scores(torch.zeros(len(group_ids)), group_ids, bundle_size=5)
    bundle_of_group = (papers // group_size)[::group_size].tolist()
    assert bundle_of_group == [0] * 5 + [1] * 5
    for b in range(2):
        block = rows[5 * b : 5 * b + 5]
        assert block == list(range(block[0], block[0] + 5))


def test_prompts_per_step_must_be_a_multiple_of_the_bundle_size():
    with pytest.raises(ValueError, match="prompts_per_step=4 is not a multiple of bundle_size=5"):
        selectors.get("riskpo_bundles")(20, bundle_size=5).next(4)


def test_bundle_position_survives_a_state_round_trip():
    a = selectors.get("riskpo_bundles")(23, seed=2, bundle_size=5)
    a.next(10)
    b = selectors.get("riskpo_bundles")(23, seed=2, bundle_size=5)
    b.load_state_dict(a.state_dict())
    assert [a.next(5) for _ in range(7)] == [b.next(5) for _ in range(7)]
