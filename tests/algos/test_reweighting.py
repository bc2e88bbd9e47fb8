"""ProGRPO (Li et al. 2026), ASPO (Lin & Xu 2025) and HAPO's token-level group average, by hand."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.reweighting import (
    aspo_advantage,
    bounded_shaping,
    hapo_length_weighted_advantage,
    mean_logprob,
    prog_grpo_advantage,
)
from grpozoo.registry import advantages
from tests.factories import make_rollouts

# group [1, 1, 0, 0]: mean 0.5, unbiased std sqrt(1/3) -> GRPO A = +-0.5 / (0.57735 + 1e-4)
A_GRPO = 0.5 / (math.sqrt(1 / 3) + 1e-4)

rewards_strategy = st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=2, max_size=8)


def test_estimators_are_registered():
    assert advantages.get("prog_grpo") is prog_grpo_advantage
    assert advantages.get("aspo") is aspo_advantage
    assert advantages.get("hapo_length_weighted") is hapo_length_weighted_advantage


# ---------------------------------------------------------------- ProGRPO


def _confidence_ctx(rewards, mean_logprobs, groups=None):
    lp = torch.tensor(mean_logprobs).unsqueeze(1).repeat(1, 4)
    return make_rollouts(rewards, groups, sampling_logprobs=lp)


def test_prog_grpo_equal_confidences_give_grpo():
    ctx = _confidence_ctx([1.0, 1.0, 0.0, 0.0, 1.0, 0.0], [-0.7] * 6, [0, 0, 0, 0, 1, 1])
    torch.testing.assert_close(
        prog_grpo_advantage(ctx.rewards, ctx.group_ids, ctx), grpo_advantage(ctx.rewards, ctx.group_ids)
    )


def test_prog_grpo_higher_confidence_correct_rollout_gets_smaller_advantage():
    ctx = _confidence_ctx([1.0, 1.0, 0.0, 0.0], [-0.5, -1.0, -1.0, -2.0])
    out = prog_grpo_advantage(ctx.rewards, ctx.group_ids, ctx, gamma=1.0)
    # w ∝ 1/c = e^0.5, e^1, normalised to mean 1: 2/(1 + e^0.5) = 0.7551, 2 e^0.5/(1 + e^0.5) = 1.2449
    w = [2 / (1 + math.exp(0.5)), 2 * math.exp(0.5) / (1 + math.exp(0.5))]
    expected = torch.tensor([A_GRPO * w[0], A_GRPO * w[1], -A_GRPO, -A_GRPO])  # incorrect unchanged
    torch.testing.assert_close(out, expected)
    assert out[0] < out[1]


@settings(max_examples=50, deadline=None)
@given(
    rewards=st.lists(st.sampled_from([0.0, 1.0]), min_size=8, max_size=8),
    logprobs=st.lists(st.floats(-5.0, 0.0), min_size=8, max_size=8),
    gamma=st.floats(0.1, 3.0),
)
def test_prog_grpo_mean_weight_over_positives_is_one(rewards, logprobs, gamma):
    groups = [0, 0, 0, 0, 1, 1, 1, 1]
    ctx = _confidence_ctx(rewards, logprobs, groups)
    out = prog_grpo_advantage(ctx.rewards, ctx.group_ids, ctx, gamma=gamma)
    base = grpo_advantage(ctx.rewards, ctx.group_ids)
    assert torch.isfinite(out).all()
    for g in (0, 1):
        pos = (base > 0) & (ctx.group_ids == g)
        if pos.any():
            assert (out[pos] / base[pos]).mean().item() == pytest.approx(1.0, abs=1e-5)
    torch.testing.assert_close(out[base <= 0], base[base <= 0])


def test_mean_logprob_over_the_lowest_fraction_and_masks():
    lp = torch.tensor([[-0.1, -2.0, -0.5, -3.0], [-1.0, -4.0, 9.0, 9.0], [7.0, 7.0, 7.0, 7.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0], [0, 0, 0, 0]])
    # all tokens: -5.6/4 = -1.4, -2.5, 0 (empty row); lowest half: (-3 - 2)/2, -4 (ceil(1) of 2), 0
    torch.testing.assert_close(mean_logprob(lp, mask), torch.tensor([-1.4, -2.5, 0.0], dtype=torch.float64))
    torch.testing.assert_close(
        mean_logprob(lp, mask, fraction=0.5), torch.tensor([-2.5, -4.0, 0.0], dtype=torch.float64)
    )


# ---------------------------------------------------------------- ASPO


def test_aspo_by_hand_with_length_feature():
    ctx = make_rollouts([1.0, 1.0, 0.0, 0.0], lengths=[2, 4, 3, 3])
    out = aspo_advantage(ctx.rewards, ctx.group_ids, ctx, delta=0.5, k=0.5)
    # f = -L over the correct pair: -2, -4 -> standardised +-0.7071 (unbiased std sqrt 2, eps 1e-4),
    # shaping 0.5 x 0.7071 = 0.3535 < bound 0.5 x A = 0.433, so A' = A +- 0.3535
    shift = 0.5 * 1.0 / (math.sqrt(2) + 1e-4)
    expected = torch.tensor([A_GRPO + shift, A_GRPO - shift, -A_GRPO, -A_GRPO])
    torch.testing.assert_close(out, expected)


def test_aspo_shaping_is_clipped_to_k_abs_a():
    ctx = make_rollouts([1.0, 1.0, 0.0, 0.0], lengths=[2, 4, 3, 3])
    out = aspo_advantage(ctx.rewards, ctx.group_ids, ctx, delta=10.0, k=0.3)
    torch.testing.assert_close(out, torch.tensor([1.3 * A_GRPO, 0.7 * A_GRPO, -A_GRPO, -A_GRPO]))


def test_aspo_constant_feature_gives_grpo():
    ctx = make_rollouts([1.0, 1.0, 0.0, 1.0], lengths=[3, 3, 1, 3])
    torch.testing.assert_close(
        aspo_advantage(ctx.rewards, ctx.group_ids, ctx, delta=5.0), grpo_advantage(ctx.rewards, ctx.group_ids)
    )


def test_aspo_first_marker_feature_prefers_early_calls():
    texts = [["a", "```py", "b", "c"], ["a", "b", "c", "```py"], ["x"] * 4, ["y"] * 4]
    ctx = make_rollouts([1.0, 1.0, 0.0, 0.0], completion_token_texts=texts)
    out = aspo_advantage(ctx.rewards, ctx.group_ids, ctx, feature="first_marker", marker="```")
    assert out[0] > A_GRPO > out[1] > 0
    with pytest.raises(ValueError, match="marker"):
        aspo_advantage(ctx.rewards, ctx.group_ids, ctx, feature="first_marker")


def test_aspo_reward_part_feature_and_nan_means_no_shaping():
    parts = {"tool_calls": torch.tensor([3.0, 1.0, float("nan"), 0.0, 5.0])}
    ctx = make_rollouts([1.0, 1.0, 1.0, 0.0, 0.0], reward_parts=parts)
    out = aspo_advantage(ctx.rewards, ctx.group_ids, ctx, feature="tool_calls")
    base = grpo_advantage(ctx.rewards, ctx.group_ids)
    assert out[0] > base[0] and out[1] < base[1]
    torch.testing.assert_close(out[2:], base[2:])
    with pytest.raises(ValueError, match="reward part"):
        aspo_advantage(ctx.rewards, ctx.group_ids, ctx, feature="nonexistent")


@settings(max_examples=50, deadline=None)
@given(
    rewards=rewards_strategy,
    lengths=st.lists(st.integers(0, 6), min_size=8, max_size=8),
    delta=st.floats(0.0, 10.0),
    k=st.floats(0.0, 0.99),
)
def test_aspo_keeps_the_sign_and_bounds_the_shaping(rewards, lengths, delta, k):
    ctx = make_rollouts(rewards, lengths=lengths[: len(rewards)], num_tokens=6)
    out = aspo_advantage(ctx.rewards, ctx.group_ids, ctx, delta=delta, k=k)
    base = grpo_advantage(ctx.rewards, ctx.group_ids)
    assert torch.isfinite(out).all()
    assert torch.equal(torch.sign(out), torch.sign(base))
    assert ((out - base).abs() <= k * base.abs() + 1e-6).all()


def test_bounded_shaping_by_hand():
    out = bounded_shaping(torch.tensor([2.0, -2.0, 0.0]), torch.tensor([5.0, 0.5, 3.0]), k=0.5)
    torch.testing.assert_close(out, torch.tensor([3.0, -1.5, 0.0]))


# ---------------------------------------------------------------- HAPO token-level group average


def test_hapo_length_weighted_entry_numbers():
    ctx = make_rollouts([1.0, 0.0], lengths=[1, 3])
    out = hapo_length_weighted_advantage(ctx.rewards, ctx.group_ids, ctx)
    # token mean 0.25, population std sqrt((0.75^2 + 3 x 0.25^2)/4) = 0.4330
    torch.testing.assert_close(out, torch.tensor([1.7320508, -0.5773503]), atol=1e-4, rtol=0)


def test_hapo_falls_back_to_grpo_when_an_advantage_reaches_five():
    ctx = make_rollouts([1.0, 0.0, 1.0, 0.0], group_ids=[0, 0, 1, 1], lengths=[1, 100, 3, 3])
    # group 0 token-level: mean 1/101, sigma = sqrt(100)/101 -> A_0 = 10 >= 5: the whole batch is GRPO
    out = hapo_length_weighted_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out, grpo_advantage(ctx.rewards, ctx.group_ids, eps=1e-6))
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0, 1.0, -1.0]) / math.sqrt(2), atol=1e-5, rtol=0)


def test_hapo_equal_lengths_is_grpo_with_population_std():
    ctx = make_rollouts([1.0, 0.0, 0.0, 1.0], lengths=[4, 4, 4, 4])
    out = hapo_length_weighted_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out, torch.tensor([1.0, -1.0, -1.0, 1.0]), atol=1e-5, rtol=0)


def test_hapo_degenerate_groups_are_finite():
    ctx = make_rollouts([1.0, 1.0, 0.5, 0.0, 1.0], group_ids=[0, 0, 1, 2, 2], lengths=[3, 2, 2, 0, 0])
    out = hapo_length_weighted_advantage(ctx.rewards, ctx.group_ids, ctx)
    assert torch.isfinite(out).all()
    assert out[:3].tolist() == [0.0, 0.0, 0.0]  # all-equal group and a single-member group
