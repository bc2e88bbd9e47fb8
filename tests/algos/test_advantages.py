"""GRPO advantages and the group reductions behind them, checked against hand-computed values."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.groups import group_count, group_mean, group_std
from grpozoo.registry import advantages

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
EPS = 1e-4
# group 0 = [1,0,0,1]: mean 0.5, unbiased var (4 * 0.25) / 3 = 1/3
STD0 = math.sqrt(1 / 3)
# group 1 = [1,1,1,0]: mean 0.75, unbiased var (3 * 0.0625 + 0.5625) / 3 = 0.25
STD1 = 0.5


# ---------------------------------------------------------------- groups


def test_group_count_broadcasts_sizes():
    ids = torch.tensor([7, 7, 3, 7, 9])
    torch.testing.assert_close(group_count(ids), torch.tensor([3.0, 3.0, 1.0, 3.0, 1.0], dtype=torch.float64))


def test_group_mean_by_hand():
    torch.testing.assert_close(group_mean(REWARDS, GROUPS), torch.tensor([0.5] * 4 + [0.75] * 4))


def test_group_mean_keeps_dtype_and_handles_arbitrary_labels():
    values = torch.tensor([2.0, 10.0, 4.0, 20.0], dtype=torch.float64)
    ids = torch.tensor([5, -1, 5, -1])  # interleaved, negative labels
    out = group_mean(values, ids)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, torch.tensor([3.0, 15.0, 3.0, 15.0], dtype=torch.float64))


def test_group_std_unbiased_by_hand():
    expected = torch.tensor([STD0] * 4 + [STD1] * 4)
    torch.testing.assert_close(group_std(REWARDS, GROUPS), expected)
    # agrees with torch.std (Bessel's correction) group by group
    torch.testing.assert_close(group_std(REWARDS, GROUPS)[:4], REWARDS[:4].std().expand(4))


def test_group_std_population_by_hand():
    # population variance: group 0 -> 1/4, group 1 -> 0.75/4 = 0.1875
    expected = torch.tensor([0.5] * 4 + [math.sqrt(0.1875)] * 4)
    torch.testing.assert_close(group_std(REWARDS, GROUPS, unbiased=False), expected)


def test_group_std_single_member_is_zero():
    out = group_std(torch.tensor([3.0, 1.0, 2.0]), torch.tensor([0, 1, 1]))
    assert out[0].item() == 0.0
    assert out[1].item() == pytest.approx(math.sqrt(0.5))


# ---------------------------------------------------------------- grpo advantage


def test_grpo_is_registered():
    assert advantages.get("grpo") is grpo_advantage


def test_grpo_group_scale_by_hand():
    a0 = 0.5 / (STD0 + EPS)  # 0.865875...
    expected = torch.tensor(
        [a0, -a0, -a0, a0, 0.25 / (STD1 + EPS), 0.25 / (STD1 + EPS), 0.25 / (STD1 + EPS), -0.75 / (STD1 + EPS)]
    )
    out = grpo_advantage(REWARDS, GROUPS)
    torch.testing.assert_close(out, expected)
    assert out[0].item() == pytest.approx(0.865875, abs=1e-5)
    assert out[7].item() == pytest.approx(-1.4997, abs=1e-4)


def test_grpo_group_scale_is_default_and_explicit():
    torch.testing.assert_close(grpo_advantage(REWARDS, GROUPS), grpo_advantage(REWARDS, GROUPS, scale="group"))


def test_grpo_batch_scale_by_hand():
    # batch mean 5/8; squared deviations 5 * 0.375^2 + 3 * 0.625^2 = 1.875; unbiased var 1.875 / 7
    batch_std = math.sqrt(1.875 / 7)
    centred = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75])
    out = grpo_advantage(REWARDS, GROUPS, scale="batch")
    torch.testing.assert_close(out, centred / (batch_std + EPS))
    assert batch_std == pytest.approx(0.517549, abs=1e-6)


def test_grpo_none_scale_is_dr_grpo_no_division():
    out = grpo_advantage(REWARDS, GROUPS, scale="none")
    torch.testing.assert_close(out, torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75]))


def test_grpo_eps_enters_denominator():
    out = grpo_advantage(REWARDS, GROUPS, eps=0.5)
    assert out[0].item() == pytest.approx(0.5 / (STD0 + 0.5))


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_all_equal_group_gets_exactly_zero(scale):
    rewards = torch.tensor([0.7, 0.7, 0.7, 1.0, 0.0])
    out = grpo_advantage(rewards, torch.tensor([0, 0, 0, 1, 1]), scale=scale)
    assert torch.equal(out[:3], torch.zeros(3))
    assert (out[3:] != 0).all()


@pytest.mark.parametrize("scale", ["group", "batch", "none"])
def test_single_member_group_is_zero_and_finite(scale):
    rewards = torch.tensor([0.3, 1.0, 0.0])
    out = grpo_advantage(rewards, torch.tensor([4, 9, 9]), scale=scale)
    assert torch.isfinite(out).all()
    assert out[0].item() == 0.0


def test_whole_batch_of_one_is_finite():
    out = grpo_advantage(torch.tensor([1.0]), torch.tensor([0]), scale="batch")
    assert torch.equal(out, torch.zeros(1))


def test_non_contiguous_unsorted_group_ids_match_sorted_result():
    # the same two groups as REWARDS/GROUPS, interleaved and with arbitrary labels
    perm = torch.tensor([4, 0, 7, 1, 5, 2, 6, 3])
    labels = torch.tensor([42, 3])[GROUPS]  # group 0 -> label 42, group 1 -> label 3
    out = grpo_advantage(REWARDS[perm], labels[perm])
    torch.testing.assert_close(out, grpo_advantage(REWARDS, GROUPS)[perm])


def test_bad_scale_raises_naming_value():
    with pytest.raises(ValueError, match="'groupp'"):
        grpo_advantage(REWARDS, GROUPS, scale="groupp")


# ---------------------------------------------------------------- property

group_sizes = st.lists(st.integers(1, 6), min_size=1, max_size=6)


@st.composite
def grouped_rewards(draw):
    sizes = draw(group_sizes)
    binary = draw(st.booleans())
    element = st.sampled_from([0.0, 1.0]) if binary else st.floats(-10, 10, allow_nan=False)
    rewards = [draw(element) for _ in range(sum(sizes))]
    ids = [g for g, size in enumerate(sizes) for _ in range(size)]
    order = draw(st.permutations(range(len(ids))))
    return (
        torch.tensor([rewards[i] for i in order], dtype=torch.float64),
        torch.tensor([ids[i] for i in order]),
    )


@settings(max_examples=60, deadline=None)
@given(grouped_rewards(), st.sampled_from(["group", "batch", "none"]))
def test_property_finite_shape_and_zero_group_sum(data, scale):
    rewards, ids = data
    out = grpo_advantage(rewards, ids, scale=scale)
    assert out.shape == rewards.shape
    assert torch.isfinite(out).all()
    for g in ids.unique():
        members = out[ids == g]
        assert members.sum().item() == pytest.approx(0.0, abs=1e-6)
        if members.numel() == 1:
            assert members.item() == 0.0


@settings(max_examples=40, deadline=None)
@given(grouped_rewards())
def test_property_group_scale_bounds_spread(data):
    # dividing by (std + eps) leaves each group's unbiased std of advantages below 1
    rewards, ids = data
    out = grpo_advantage(rewards, ids, scale="group")
    for g in ids.unique():
        members = out[ids == g]
        if members.numel() > 1:
            assert members.std().item() <= 1.0 + 1e-9


def test_integer_rewards_give_float_statistics():
    rewards = torch.tensor([1, 0, 0, 1])
    ids = torch.tensor([0, 0, 0, 0])
    assert group_mean(rewards, ids).tolist() == [0.5] * 4
    assert group_std(rewards, ids).dtype == torch.float32
