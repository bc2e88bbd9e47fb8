"""Batch-baseline advantage estimators (REINFORCE++, REINFORCE++-baseline, ReMax) by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.batch_baselines import (
    reinforce_pp_advantage,
    reinforce_pp_baseline_advantage,
    remax_advantage,
)
from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.registry import advantages
from tests.factories import make_rollouts

REWARDS = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0])
GROUPS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])


@pytest.mark.parametrize(
    ("name", "fn"),
    [
        ("reinforce_pp", reinforce_pp_advantage),
        ("reinforce_pp_baseline", reinforce_pp_baseline_advantage),
        ("remax", remax_advantage),
    ],
)
def test_registered(name, fn):
    assert advantages.get(name) is fn


def test_reinforce_pp_whitens_over_the_batch_by_hand():
    # batch mean 5/8; squared deviations 5·(3/8)² + 3·(5/8)² = 1.875; population std sqrt(1.875/8)
    out = reinforce_pp_advantage(REWARDS, GROUPS)
    std = math.sqrt(1.875 / 8)
    torch.testing.assert_close(out, (REWARDS - 0.625) / std)
    unbiased = reinforce_pp_advantage(REWARDS, GROUPS, unbiased=True)
    torch.testing.assert_close(unbiased, (REWARDS - 0.625) / math.sqrt(1.875 / 7))


def test_reinforce_pp_ignores_groups():
    regrouped = reinforce_pp_advantage(REWARDS, torch.arange(8))
    torch.testing.assert_close(regrouped, reinforce_pp_advantage(REWARDS, GROUPS))


def test_reinforce_pp_gives_signal_to_groups_grpo_zeroes():
    rewards, groups = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([0, 0, 1, 1])
    assert torch.equal(grpo_advantage(rewards, groups), torch.zeros(4))
    torch.testing.assert_close(reinforce_pp_advantage(rewards, groups), torch.tensor([1.0, 1.0, -1.0, -1.0]))


def test_reinforce_pp_baseline_by_hand():
    # centred [.5,−.5,−.5,.5,.25,.25,.25,−.75]: mean 0, population var (1 + 3/16 + 9/16)/8 = 7/32
    centred = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75])
    out = reinforce_pp_baseline_advantage(REWARDS, GROUPS)
    torch.testing.assert_close(out, centred / math.sqrt(7 / 32))
    # one scale for the whole batch, unlike GRPO's per-group std
    assert out[0] / out[4] == pytest.approx(2.0)
    grpo = grpo_advantage(REWARDS, GROUPS)
    assert grpo[0] / grpo[4] != pytest.approx(2.0, abs=0.1)


def test_reinforce_pp_baseline_degenerate_groups_are_zero():
    out = reinforce_pp_baseline_advantage(torch.tensor([1.0, 1.0, 0.0, 1.0]), torch.tensor([0, 0, 1, 1]))
    assert torch.equal(out[:2], torch.zeros(2))
    # centred [0, 0, −.5, .5]: population std sqrt(0.5/4); the degenerate group still counts in it
    torch.testing.assert_close(out[2:], torch.tensor([-math.sqrt(2), math.sqrt(2)]))


def test_remax_subtracts_the_greedy_reward():
    ctx = make_rollouts(
        [1.0, 0.0, 1.0, 0.5], [0, 0, 1, 1], baseline_rewards=torch.tensor([1.0, 1.0, 0.0, 0.0])
    )
    out = remax_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out, torch.tensor([0.0, -1.0, 1.0, 0.5]))


def test_remax_declares_its_need_and_fails_clearly_without_it():
    assert advantages.spec("remax").needs == frozenset({"baseline_rewards"})
    ctx = make_rollouts([1.0, 0.0])
    with pytest.raises(ValueError, match="baseline_rewards"):
        remax_advantage(ctx.rewards, ctx.group_ids, ctx)


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-10, 10, allow_nan=False, width=32), min_size=1, max_size=12),
    st.sampled_from([reinforce_pp_advantage, reinforce_pp_baseline_advantage]),
)
def test_property_finite_zero_mean_unit_scale(values, fn):
    rewards = torch.tensor(values)
    groups = torch.arange(len(values)) // 3
    out = fn(rewards, groups)
    assert out.shape == rewards.shape and torch.isfinite(out).all()
    assert out.double().mean().item() == pytest.approx(0.0, abs=1e-4)
    assert out.double().pow(2).mean().item() <= 1.0 + 1e-4  # population std of the output is at most 1
