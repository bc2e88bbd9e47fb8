"""Batch-baseline advantage estimators (REINFORCE++, REINFORCE++-baseline, ReMax) by hand, and the
token-level whitening REINFORCE++ applies to per-token returns."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages import reward_with_kl
from grpozoo.algos.advantages.batch_baselines import (
    reinforce_pp_advantage,
    reinforce_pp_baseline_advantage,
    remax_advantage,
    whiten_over_batch,
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


# equal lengths: token-level and per-completion whitening agree
CTX = make_rollouts(REWARDS, GROUPS, num_tokens=3)


def test_reinforce_pp_whitens_over_the_batch_by_hand():
    # batch mean 5/8; squared deviations 5·(3/8)² + 3·(5/8)² = 1.875; population std sqrt(1.875/8)
    std = math.sqrt(1.875 / 8)
    for whiten in ("token", "sequence"):
        out = reinforce_pp_advantage(REWARDS, GROUPS, CTX, whiten=whiten)
        torch.testing.assert_close(out, (REWARDS - 0.625) / std)
    unbiased = reinforce_pp_advantage(REWARDS, GROUPS, CTX, whiten="sequence", unbiased=True)
    torch.testing.assert_close(unbiased, (REWARDS - 0.625) / math.sqrt(1.875 / 7))


def test_reinforce_pp_ignores_groups():
    regrouped = reinforce_pp_advantage(REWARDS, torch.arange(8), CTX)
    torch.testing.assert_close(regrouped, reinforce_pp_advantage(REWARDS, GROUPS, CTX))


def test_reinforce_pp_gives_signal_to_groups_grpo_zeroes():
    rewards, groups = torch.tensor([1.0, 1.0, 0.0, 0.0]), torch.tensor([0, 0, 1, 1])
    ctx = make_rollouts(rewards, groups)
    assert torch.equal(grpo_advantage(rewards, groups), torch.zeros(4))
    out = reinforce_pp_advantage(rewards, groups, ctx)
    torch.testing.assert_close(out, torch.tensor([1.0, 1.0, -1.0, -1.0]))


# ---------------------------------------------------------------- token-level whitening


def test_reinforce_pp_whitens_over_tokens_so_long_completions_weigh_more():
    # lengths [3, 1]: the tokens' rewards are [1, 1, 1, 0], mean 3/4, population std sqrt(3)/4
    ctx = make_rollouts([1.0, 0.0], [0, 1], lengths=[3, 1])
    out = reinforce_pp_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out, torch.tensor([1 / math.sqrt(3), -math.sqrt(3)]))
    # one value per completion: the lengths do not matter
    per_completion = reinforce_pp_advantage(ctx.rewards, ctx.group_ids, ctx, whiten="sequence")
    torch.testing.assert_close(per_completion, torch.tensor([1.0, -1.0]))


def test_token_whitening_is_zero_mean_and_unit_std_over_the_tokens():
    ctx = make_rollouts([1.0, 0.0, 0.5, 0.0, 1.0], [0, 0, 1, 1, 2], lengths=[5, 1, 2, 4, 3])
    for out in (
        reinforce_pp_advantage(ctx.rewards, ctx.group_ids, ctx),
        reinforce_pp_baseline_advantage(ctx.rewards, ctx.group_ids, ctx),
    ):
        tokens = out.double().unsqueeze(1).expand(ctx.completion_mask.shape)[ctx.completion_mask.bool()]
        assert tokens.mean().item() == pytest.approx(0.0, abs=1e-6)
        assert tokens.std(unbiased=False).item() == pytest.approx(1.0, abs=1e-6)


def test_whitening_per_token_returns_by_hand():
    # returns of two completions, 2 and 1 tokens: tokens [0, 1, −1], mean 0, population var 2/3
    returns = torch.tensor([[0.0, 1.0], [-1.0, 0.0]])
    mask = torch.tensor([[1, 1], [1, 0]])
    out = whiten_over_batch(returns, mask)
    torch.testing.assert_close(out, torch.tensor([[0.0, 1.0], [-1.0, 0.0]]) / math.sqrt(2 / 3))
    # per completion: each completion weighs 1 (its tokens ½ each): mean (½ − 1)/2 = −¼
    seq = whiten_over_batch(returns, mask, "sequence")
    mean, var = -0.25, (0.5 * 0.25**2 + 0.5 * 1.25**2 + 0.75**2) / 2
    torch.testing.assert_close(seq, (torch.tensor([[0.0, 1.0], [-1.0, mean]]) - mean) / math.sqrt(var) * mask)


def test_whitening_leaves_out_completions_without_tokens():
    mask = torch.tensor([[1, 1], [0, 0], [1, 0]])
    out = whiten_over_batch(torch.tensor([1.0, 7.0, 0.0]), mask)
    # tokens [1, 1, 0]: mean 2/3, population std sqrt(2)/3; the empty completion gets 0
    torch.testing.assert_close(out, torch.tensor([1 / math.sqrt(2), 0.0, -math.sqrt(2)]))
    assert torch.equal(whiten_over_batch(torch.tensor([1.0, 0.0]), torch.zeros(2, 3)), torch.zeros(2))


def test_whitening_names_a_bad_level():
    with pytest.raises(ValueError, match="'tokens'"):
        reinforce_pp_advantage(REWARDS, GROUPS, CTX, whiten="tokens")


# ---------------------------------------------------------------- the KL folded into the reward


def test_reinforce_pp_whitens_returns_that_hold_the_kl():
    # four one-token completions, rewards [1, 0, 0, 0], penalty β·k1 = 0.5·[2, 0, 0, 0]: returns all 0
    ctx = make_rollouts([1.0, 0.0, 0.0, 0.0], [0, 1, 2, 3], num_tokens=1)
    penalty = 0.5 * torch.tensor([[2.0], [0.0], [0.0], [0.0]])
    returns = reward_with_kl("returns", ctx.rewards, penalty, ctx.completion_mask)
    assert torch.equal(returns, torch.zeros(4, 1))
    assert torch.equal(reinforce_pp_advantage(returns, ctx.group_ids, ctx), torch.zeros(4, 1))


def test_reinforce_pp_baseline_centres_by_the_task_reward_before_the_kl():
    # one group, rewards [1, 0], 2 tokens each; β·kl = [[0.2, 0.1], [0, 0.4]]
    ctx = make_rollouts([1.0, 0.0], [0, 0], num_tokens=2)
    penalty = torch.tensor([[0.2, 0.1], [0.0, 0.4]])
    returns = reward_with_kl("returns", ctx.rewards, penalty, ctx.completion_mask)
    torch.testing.assert_close(returns, torch.tensor([[0.7, 0.9], [-0.4, -0.4]]))
    out = reinforce_pp_baseline_advantage(returns, ctx.group_ids, ctx)
    # baseline mean_G r = 0.5: centred tokens [0.2, 0.4, −0.9, −0.9], then whitened over the tokens
    centred = torch.tensor([[0.2, 0.4], [-0.9, -0.9]], dtype=torch.float64)
    expected = (centred - centred.mean()) / centred.std(unbiased=False)
    torch.testing.assert_close(out, expected.float())


def test_reinforce_pp_baseline_by_hand():
    # centred [.5,−.5,−.5,.5,.25,.25,.25,−.75]: mean 0, population var (1 + 3/16 + 9/16)/8 = 7/32
    centred = torch.tensor([0.5, -0.5, -0.5, 0.5, 0.25, 0.25, 0.25, -0.75])
    out = reinforce_pp_baseline_advantage(REWARDS, GROUPS, CTX)
    torch.testing.assert_close(out, centred / math.sqrt(7 / 32))
    # one scale for the whole batch, unlike GRPO's per-group std
    assert out[0] / out[4] == pytest.approx(2.0)
    grpo = grpo_advantage(REWARDS, GROUPS)
    assert grpo[0] / grpo[4] != pytest.approx(2.0, abs=0.1)


def test_reinforce_pp_baseline_degenerate_groups_are_zero():
    ctx = make_rollouts([1.0, 1.0, 0.0, 1.0], [0, 0, 1, 1])
    out = reinforce_pp_baseline_advantage(ctx.rewards, ctx.group_ids, ctx)
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
    ctx = make_rollouts(values, torch.arange(len(values)) // 3)
    out = fn(ctx.rewards, ctx.group_ids, ctx)
    rewards = ctx.rewards
    assert out.shape == rewards.shape and torch.isfinite(out).all()
    assert out.double().mean().item() == pytest.approx(0.0, abs=1e-4)
    assert out.double().pow(2).mean().item() <= 1.0 + 1e-4  # population std of the output is at most 1
