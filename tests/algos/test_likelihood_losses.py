"""NFT (Chen et al. 2025, arXiv:2505.18116): negative-aware fine-tuning, checked against hand-computed
gradients and against GRPO / Dr.GRPO advantages on-policy."""

import math

import pytest
import torch
from factories import make_rollouts
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.groups import group_mean, group_std
from grpozoo.algos.losses.likelihood import nft_loss
from grpozoo.registry import losses


def _on_policy_grad(rewards, length=1, group_ids=None, **params):
    ctx = make_rollouts(rewards, group_ids=group_ids, num_tokens=length)
    b = len(rewards)
    logp = (-torch.rand(b, length) - 0.1).requires_grad_(True)
    loss, diag = nft_loss(logp, logp.detach(), torch.zeros(b), torch.ones(b, length), ctx, **params)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    return loss, grad, diag


def test_registered_and_whole_groups():
    assert losses.get("nft") is nft_loss
    assert losses.spec("nft").whole_groups is True


def test_option_2_gradient_at_ratio_one_by_hand():
    # NFT at R = 1, r̂ = 0.25, option 2 -> −√3 on the correct token, +1/√3 ≈ 0.577 on incorrect ones
    _, grad, diag = _on_policy_grad([1.0, 0.0, 0.0, 0.0], prompt_weight="sqrt_odds")
    torch.testing.assert_close(grad[:, 0], torch.tensor([-math.sqrt(3.0)] + [1 / math.sqrt(3.0)] * 3))
    assert grad[1, 0].item() == pytest.approx(0.577, abs=1e-3)
    torch.testing.assert_close(diag["correct_rate"][:, 0], torch.full((4,), 0.25))


def test_option_2_equals_grpo_with_population_std_on_policy():
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    _, grad, _ = _on_policy_grad(
        rewards.tolist(), length=3, group_ids=groups.tolist(), prompt_weight="sqrt_odds"
    )
    grpo = (rewards - group_mean(rewards, groups)) / group_std(rewards, groups, unbiased=False)
    torch.testing.assert_close(grad, -grpo.unsqueeze(1).expand(10, 3))


def test_option_1_equals_dr_grpo_on_policy():
    # (1 − r̂) weighting: −(1 − p) on correct tokens, +p on incorrect ones: Dr.GRPO's A = r − mean
    rewards = torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 0.0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    _, grad, _ = _on_policy_grad(
        rewards.tolist(), length=2, group_ids=groups.tolist(), prompt_weight="one_minus_rate"
    )
    torch.testing.assert_close(grad, -(rewards - group_mean(rewards, groups)).unsqueeze(1).expand(8, 2))
    assert grad[0, 0].item() == pytest.approx(-0.75) and grad[1, 0].item() == pytest.approx(0.25)


def test_off_policy_values_by_hand():
    # r̂ = 0.5, option "none": correct token with R = 2 -> −log 2; incorrect with R = 0.5 ->
    # −log((1 − 0.25)/0.5) = −log 1.5; incorrect with R = 1.5 -> proxy 0.5 clamped to 1 -> value 0
    ctx = make_rollouts([1.0, 0.0, 0.0, 1.0], num_tokens=1)
    logp = torch.log(torch.tensor([[2.0], [0.5], [1.5], [1.0]])).requires_grad_(True)
    loss, _ = nft_loss(logp, torch.zeros(4, 1), torch.zeros(4), torch.ones(4, 1), ctx, prompt_weight="none")
    torch.testing.assert_close(loss[:, 0], torch.tensor([-math.log(2.0), -math.log(1.5), 0.0, 0.0]))
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    # −∂R/R = −1 for correct; r̂R/(1 − r̂)/max(proxy, 1): 0.5/1.5 and 1.5/1 for the incorrect ones
    torch.testing.assert_close(grad[:, 0], torch.tensor([-1.0, 0.5 / 1.5, 1.5, -1.0]))


def test_negative_weight_zero_is_rejection_sampling_fine_tuning():
    _, grad, _ = _on_policy_grad([1.0, 0.0, 0.0], negative_weight=0.0, prompt_weight="none")
    torch.testing.assert_close(grad[:, 0], torch.tensor([-1.0, 0.0, 0.0]))


@pytest.mark.parametrize("rewards", [[1.0, 1.0, 1.0], [0.0, 0.0, 0.0], [1.0], [0.0]])
def test_uniform_and_single_member_groups_are_dropped(rewards):
    loss, grad, _ = _on_policy_grad(rewards, length=2)
    assert torch.equal(loss, torch.zeros(len(rewards), 2)) and torch.equal(grad, torch.zeros(len(rewards), 2))


def test_uniform_groups_kept_use_the_clamped_rate():
    # without dropping, an all-wrong group has r̂ = 0.02: option 2 weight √(0.98/0.02) = 7,
    # gradient on a wrong token 7·0.02/0.98 = √(0.02/0.98)
    _, grad, _ = _on_policy_grad([0.0, 0.0], drop_uniform_groups=False, prompt_weight="sqrt_odds")
    torch.testing.assert_close(grad[:, 0], torch.full((2,), math.sqrt(0.02 / 0.98)))


def test_correct_threshold():
    _, grad, _ = _on_policy_grad([0.9, 0.2], prompt_weight="none", correct_threshold=0.8)
    torch.testing.assert_close(grad[:, 0], torch.tensor([-1.0, 1.0]))  # r̂ = 0.5: r̂/(1 − r̂) = 1


def test_padding_and_empty_rows():
    ctx = make_rollouts([1.0, 0.0, 0.0], lengths=[2, 0, 3], num_tokens=3)
    mask = ctx.completion_mask.float()
    logp = torch.where(mask > 0, -torch.rand(3, 3), torch.full((3, 3), float("nan"))).requires_grad_(True)
    loss, diag = nft_loss(logp, torch.zeros(3, 3) - 0.5, torch.zeros(3), mask, ctx)
    assert torch.isfinite(loss).all() and (loss[mask == 0] == 0).all()
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.isfinite(grad).all() and (grad[mask == 0] == 0).all()
    for value in diag.values():
        assert (value[mask == 0] == 0).all()


def test_rejects_unknown_prompt_weight():
    ctx = make_rollouts([1.0, 0.0], num_tokens=1)
    with pytest.raises(ValueError, match="prompt_weight"):
        nft_loss(
            torch.zeros(2, 1), torch.zeros(2, 1), torch.zeros(2), torch.ones(2, 1), ctx, prompt_weight="grpo"
        )


@settings(max_examples=40, deadline=None)
@given(st.lists(st.sampled_from([0.0, 1.0]), min_size=2, max_size=6), st.data())
def test_property_finite_for_wild_ratios(rewards, data):
    b = len(rewards)
    ctx = make_rollouts(rewards, num_tokens=2)
    logp = torch.tensor(
        data.draw(st.lists(st.floats(-40, 0, width=32), min_size=2 * b, max_size=2 * b))
    ).view(b, 2)
    logp.requires_grad_(True)
    old = torch.tensor(data.draw(st.lists(st.floats(-40, 0, width=32), min_size=2 * b, max_size=2 * b))).view(
        b, 2
    )
    weight = data.draw(st.sampled_from(["one_minus_rate", "sqrt_odds", "none"]))
    loss, _ = nft_loss(
        logp, old, torch.zeros(b), torch.ones(b, 2), ctx, prompt_weight=weight, clamp_negative=0.0
    )
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
