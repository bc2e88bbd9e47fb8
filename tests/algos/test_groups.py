"""Group statistics beyond mean/std, checked against hand-computed values and torch references."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.groups import (
    batch_whiten,
    group_abs_dev,
    group_ids_from_keys,
    group_is_constant,
    group_mad,
    group_max,
    group_median,
    group_median_pivot,
    group_min,
    group_quantile,
    group_rank,
    group_sum,
    group_weighted_mean,
    leave_one_out_mean,
)

VALUES = torch.tensor([3.0, 1.0, 2.0, 5.0, 5.0, 5.0, 7.0])
GROUPS = torch.tensor([0, 0, 0, 1, 1, 1, 2])


def test_sum_min_max_by_hand():
    assert group_sum(VALUES, GROUPS).tolist() == [6.0] * 3 + [15.0] * 3 + [7.0]
    assert group_min(VALUES, GROUPS).tolist() == [1.0] * 3 + [5.0] * 3 + [7.0]
    assert group_max(VALUES, GROUPS).tolist() == [3.0] * 3 + [5.0] * 3 + [7.0]


def test_min_max_handle_negative_values_and_labels():
    values = torch.tensor([-4.0, -2.0, -9.0])
    ids = torch.tensor([-3, -3, 8])
    assert group_min(values, ids).tolist() == [-4.0, -4.0, -9.0]
    assert group_max(values, ids).tolist() == [-2.0, -2.0, -9.0]


def test_is_constant_includes_single_member_groups():
    assert group_is_constant(VALUES, GROUPS).tolist() == [False] * 3 + [True] * 4


def test_leave_one_out_mean_by_hand():
    # group 0 = [3, 1, 2]: others' means (1+2)/2, (3+2)/2, (3+1)/2; single member keeps its own value
    expected = [1.5, 2.5, 2.0, 5.0, 5.0, 5.0, 7.0]
    torch.testing.assert_close(leave_one_out_mean(VALUES, GROUPS), torch.tensor(expected))


def test_weighted_mean_by_hand_and_zero_weight_fallback():
    values = torch.tensor([1.0, 0.0, 4.0, 8.0])
    weights = torch.tensor([3.0, 1.0, 0.0, 0.0])
    ids = torch.tensor([0, 0, 1, 1])
    # group 0: (3·1 + 1·0)/4 = 0.75; group 1 has no weight: plain mean 6
    torch.testing.assert_close(
        group_weighted_mean(values, weights, ids), torch.tensor([0.75, 0.75, 6.0, 6.0])
    )


def test_rank_breaks_ties_by_batch_position():
    values = torch.tensor([0.0, 1.0, 0.0, 0.0, 2.0, 2.0])
    ids = torch.tensor([0, 0, 0, 0, 1, 1])
    assert group_rank(values, ids).tolist() == [0, 3, 1, 2, 0, 1]


def test_median_odd_even_and_lower():
    values = torch.tensor([4.0, 1.0, 3.0, 2.0, 9.0, 7.0, 8.0])
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    # group 0 sorted [1, 2, 3, 4]: median 2.5, lower median 2; group 1 sorted [7, 8, 9]: 8
    assert group_median(values, ids).tolist() == [2.5] * 4 + [8.0] * 3
    assert group_median(values, ids, lower=True).tolist() == [2.0] * 4 + [8.0] * 3


def test_median_pivot_marks_the_middle_member():
    values = torch.tensor([4.0, 1.0, 3.0, 9.0, 7.0, 8.0])
    ids = torch.tensor([0, 0, 0, 1, 1, 1])
    assert group_median_pivot(values, ids).tolist() == [False, False, True, False, False, True]


def test_median_pivot_is_unique_under_ties():
    values = torch.tensor([0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    ids = torch.tensor([0, 0, 0, 1, 1, 1, 2, 2, 2, 2])
    pivot = group_median_pivot(values, ids)
    for g in range(3):
        assert int(pivot[ids == g].sum()) == 1
    assert pivot.tolist()[:3] == [False, True, False]  # the middle of three tied rows
    # the pivot's value is the (lower) median
    torch.testing.assert_close(values[pivot], torch.tensor([0.0, 1.0, 1.0]))


def test_quantile_matches_torch_quantile_per_group():
    generator = torch.Generator().manual_seed(0)
    values = torch.randn(11, generator=generator)
    ids = torch.tensor([2, 0, 2, 0, 2, 1, 0, 2, 2, 1, 0])
    for q in (0.0, 0.1, 0.5, 0.8, 1.0):
        out = group_quantile(values, ids, q)
        for g in ids.unique():
            members = ids == g
            torch.testing.assert_close(
                out[members], torch.quantile(values[members], q).expand(int(members.sum()))
            )


def test_quantile_rejects_q_outside_unit_interval():
    with pytest.raises(ValueError, match="q=1.5"):
        group_quantile(VALUES, GROUPS, 1.5)


def test_abs_dev_and_mad_by_hand():
    values = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 2.0, 10.0])
    ids = torch.tensor([0, 0, 0, 0, 1, 1, 1])
    # group 0: mean 0.25, |dev| = [0.75, 0.25, 0.25, 0.25] -> 0.375; group 1: mean 13/3
    dev1 = (abs(1 - 13 / 3) + abs(2 - 13 / 3) + abs(10 - 13 / 3)) / 3
    torch.testing.assert_close(group_abs_dev(values, ids), torch.tensor([0.375] * 4 + [dev1] * 3))
    # MAD: group 0 median 0, |dev| = [1,0,0,0] -> median 0; group 1 median 2, |dev| = [1,0,8] -> 1
    torch.testing.assert_close(group_mad(values, ids), torch.tensor([0.0] * 4 + [1.0] * 3))


def test_batch_whiten_population_and_unbiased_by_hand():
    values = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0])
    # mean 0.6; squared deviations 3·0.16 + 2·0.36 = 1.2; population var 0.24, unbiased 0.3
    centred = values - 0.6
    torch.testing.assert_close(batch_whiten(values, eps=0.0), centred / math.sqrt(0.24))
    torch.testing.assert_close(batch_whiten(values, eps=0.0, unbiased=True), centred / math.sqrt(0.3))


def test_batch_whiten_degenerate_batches_are_zero():
    assert torch.equal(batch_whiten(torch.tensor([0.7, 0.7, 0.7])), torch.zeros(3))
    assert torch.equal(batch_whiten(torch.tensor([3.0]), unbiased=True), torch.zeros(1))
    assert batch_whiten(torch.tensor([])).numel() == 0


def test_ids_from_keys_composes_prompt_and_stratum():
    prompt = torch.tensor([0, 0, 0, 1, 1])
    stratum = torch.tensor([2.0, 0.0, 2.0, 2.0, float("nan")])
    ids = group_ids_from_keys(prompt, stratum)
    assert ids[0] == ids[2]
    assert len({int(i) for i in ids}) == 4  # (0,2), (0,0), (1,2), (1,nan)
    nan_pair = group_ids_from_keys(torch.tensor([0, 0]), torch.tensor([float("nan")] * 2))
    assert nan_pair[0] == nan_pair[1]


@st.composite
def grouped_values(draw):
    sizes = draw(st.lists(st.integers(1, 6), min_size=1, max_size=5))
    values = [draw(st.sampled_from([0.0, 1.0, 2.5, -1.0])) for _ in range(sum(sizes))]
    ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    order = draw(st.permutations(range(len(ids))))
    return torch.tensor([values[i] for i in order]), torch.tensor([ids[i] for i in order])


@settings(max_examples=40, deadline=None)
@given(grouped_values())
def test_property_one_pivot_per_group_at_the_lower_median(data):
    values, ids = data
    pivot = group_median_pivot(values, ids)
    lower = group_median(values, ids, lower=True)
    for g in ids.unique():
        members = ids == g
        assert int(pivot[members].sum()) == 1
        assert values[pivot & members].item() == torch.median(values[members]).item()
        assert lower[members][0].item() == torch.median(values[members]).item()
    ranks = group_rank(values, ids)
    for g in ids.unique():
        assert sorted(ranks[ids == g].tolist()) == list(range(int((ids == g).sum())))
