"""Trust-region losses: BPO's bounded-ratio target, FiberPO's base/fiber gating, MDPO's KL-to-old
term and GRPO-Guard's re-centred clip, on small hand-made tensors."""

from __future__ import annotations

import math

import pytest
import torch
from factories import batch_for, make_rollouts

from grpozoo.algos.losses import batch_statistics
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.losses.trust_region import (
    bounded_ratio_target,
    bpo_loss,
    fiberpo_loss,
    grpo_guard_loss,
    mdpo_kl_coefficient,
    mdpo_loss,
)
from grpozoo.algos.masked import masked_mean


def _grad(loss_fn, logp, old, adv, mask, ctx=None, **params):
    logp = logp.clone().requires_grad_(True)
    loss, diagnostics = loss_fn(logp, old, adv, mask, ctx if ctx is not None else batch_for(mask), **params)
    (loss * mask).sum().backward()
    return loss.detach(), logp.grad, diagnostics


# --------------------------------------------------------------------------- BPO


def test_bpo_gradient_is_zero_at_the_bounded_ratio_target():
    mask = torch.ones(2, 1)
    old = torch.full((2, 1), -1.0)
    adv = torch.tensor([1.5, -0.7])
    logp = old + torch.tensor([[math.log(1.2)], [math.log(0.8)]])  # ρ = r* = 1 ± 0.2
    loss, grad, diagnostics = _grad(bpo_loss, logp, old, adv, mask)
    assert torch.allclose(grad, torch.zeros_like(grad), atol=1e-6)
    assert torch.allclose(loss, torch.zeros_like(loss), atol=1e-10)
    assert torch.allclose(diagnostics["target_ratio"], torch.tensor([[1.2], [0.8]]))


def test_bpo_pushes_a_positive_token_up_only_until_the_bound():
    mask = torch.ones(1, 4)
    old = torch.full((1, 4), -1.0)
    ratios = torch.tensor([[0.9, 1.0, 1.19, 1.5]])
    _, grad, diagnostics = _grad(bpo_loss, old + ratios.log(), old, torch.tensor([2.0]), mask)
    assert (grad[0, :3] < 0).all()  # descent raises logp below 1 + ε
    assert grad[0, 3] > 0  # no incentive past the bound: descent lowers logp
    assert diagnostics["clip_fraction"].tolist() == [[0.0, 0.0, 0.0, 1.0]]


def test_bpo_on_policy_gradient_is_the_policy_gradient():
    mask = torch.tensor([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    old = torch.tensor([[-0.5, -2.0, 0.0], [-1.0, -0.1, -3.0]])
    adv = torch.tensor([0.8, -1.3])
    _, grad, _ = _grad(bpo_loss, old.clone(), old, adv, mask, eps_low=0.1, eps_high=0.3)
    assert torch.allclose(grad, -adv.unsqueeze(1) * mask)


def test_bpo_linear_target_is_clipped_to_the_bounds():
    adv = torch.tensor([[0.05], [1.0], [-1.0], [0.0]])
    target = bounded_ratio_target(adv, 0.2, 0.3, target="linear", lam=1.0)
    assert torch.allclose(target, torch.tensor([[1.05], [1.3], [0.8], [1.0]]))
    with pytest.raises(ValueError, match="eps_low"):
        bpo_loss(torch.zeros(1, 1), torch.zeros(1, 1), torch.ones(1), torch.ones(1, 1), batch_for(torch.ones(1, 1)), eps_low=1.0)


# --------------------------------------------------------------------------- FiberPO


def test_fiberpo_on_policy_jacobian_is_the_identity():
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    old = torch.tensor([[-0.3, -1.0, -2.0], [-0.7, -0.2, 0.0]])
    adv = torch.tensor([[0.5, -1.0, 2.0], [1.5, 0.25, 0.0]])  # token advantages: each token its own
    _, grad, diagnostics = _grad(fiberpo_loss, old.clone(), old, adv, mask)
    assert torch.allclose(grad, -adv * mask)  # vanilla PG: no mixing between a sequence's tokens
    assert diagnostics["clip_fraction"].sum() == 0


def test_fiberpo_equal_token_ratios_give_a_pure_sequence_gate():
    mask = torch.ones(2, 3)
    old = torch.full((2, 3), -1.0)
    shift = torch.tensor([[0.03], [0.3]])  # inside and outside delta_traj = 0.05
    loss, grad, diagnostics = _grad(fiberpo_loss, old + shift, old, torch.tensor([1.0, 1.0]), mask)
    assert torch.allclose(diagnostics["fiber_log_ratio"], torch.zeros(2, 3), atol=1e-7)
    expected = -torch.exp(shift.clamp(-0.05, 0.05)).expand(2, 3)
    assert torch.allclose(loss, expected)
    assert torch.all(grad[1] == 0)  # past the trajectory budget: censored
    assert torch.all(grad[0] < 0)
    assert diagnostics["clip_fraction_traj"].tolist() == [[0.0] * 3, [1.0] * 3]


def test_fiberpo_gates_a_token_residual_on_its_own_budget():
    mask = torch.ones(1, 2)
    old = torch.zeros(1, 2)
    logp = torch.tensor([[0.5, -0.5]])  # ℓ̄ = 0, residuals ±0.5 beyond delta_tok = 0.2
    loss, grad, diagnostics = _grad(fiberpo_loss, logp, old, torch.tensor([1.0]), mask)
    assert torch.allclose(loss, -torch.exp(torch.tensor([[0.2, -0.2]])))
    assert diagnostics["clip_fraction_tok"].tolist() == [[1.0, 1.0]]
    # the residuals are censored; the sequence's common direction still learns through the base
    shared = -(math.exp(0.2) + math.exp(-0.2)) / 2
    assert torch.allclose(grad, torch.full((1, 2), shared))


# --------------------------------------------------------------------------- MDPO


def test_mdpo_kl_term_and_its_gradient_vanish_at_the_old_policy():
    mask = torch.tensor([[1.0, 1.0, 0.0]])
    old = torch.tensor([[-0.4, -1.6, 0.0]])
    adv = torch.tensor([1.7])
    loss, grad, diagnostics = _grad(mdpo_loss, old.clone(), old, adv, mask)
    assert torch.allclose(diagnostics["mdpo_kl"], torch.zeros(1, 3))
    assert torch.allclose(loss, -adv * mask)
    assert torch.allclose(grad, -adv * mask)  # the policy gradient, nothing from the KL term


def test_mdpo_loss_increases_with_kl_at_fixed_ratio_times_advantage():
    mask = torch.ones(2, 1)
    old = torch.zeros(2, 1)
    ratios = torch.tensor([[1.1], [1.3]])
    adv = torch.tensor([1.0, 1.1 / 1.3])  # ρ·A = 1.1 for both tokens
    loss, _ = mdpo_loss(ratios.log(), old, adv, mask, batch_for(mask, step=1, total_steps=10))
    kl = ratios * ratios.log() - ratios + 1
    assert kl[1] > kl[0] > 0
    assert torch.allclose(loss, -1.1 + kl)  # 1/t_1 = 1
    assert loss[1] > loss[0]


def test_mdpo_step_size_anneals_as_one_minus_k_over_k():
    assert mdpo_kl_coefficient(1, 10, 1.0, True, 0.1) == pytest.approx(1.0)
    assert mdpo_kl_coefficient(6, 10, 1.0, True, 0.1) == pytest.approx(2.0)  # t = 1 − 5/10
    assert mdpo_kl_coefficient(10, 10, 1.0, True, 0.2) == pytest.approx(5.0)  # floored at 0.2
    assert mdpo_kl_coefficient(10, 10, 0.5, False, 0.1) == pytest.approx(2.0)


# --------------------------------------------------------------------------- GRPO-Guard


def _symmetric_drifted_batch(shift: float):
    """Two rows (A = +1, A = −1), each with centred log-ratios ±0.5, ±0.05, all shifted by ``shift``."""
    offsets = torch.tensor([0.5, -0.5, 0.05, -0.05])
    old = torch.full((2, 4), -1.0)
    logp = old + shift + offsets.repeat(2, 1)
    return logp, old, torch.tensor([1.0, -1.0]), torch.ones(2, 4)


def test_grpo_guard_recentred_log_ratio_has_zero_mean_and_symmetric_clip_fractions():
    logp, old, adv, mask = _symmetric_drifted_batch(shift=-0.4)
    ctx = batch_for(mask)
    _, plain = ppo_clip_loss(logp, old, adv, mask, ctx)
    assert plain["clip_fraction_high"].sum() == 0 and plain["clip_fraction_low"].sum() == 3  # drifted: asymmetric
    _, guarded = grpo_guard_loss(logp, old, adv, mask, ctx)
    assert masked_mean(guarded["centred_log_ratio"], mask).abs() < 1e-6
    assert guarded["clip_fraction_high"].sum() == guarded["clip_fraction_low"].sum() == 1


def test_grpo_guard_is_ppo_clip_on_policy_and_takes_its_centre_over_the_whole_batch():
    logp, old, adv, mask = _symmetric_drifted_batch(shift=0.0)
    ctx = batch_for(mask)
    on_policy, _ = grpo_guard_loss(old.clone(), old, adv, mask, ctx)
    assert torch.allclose(on_policy, ppo_clip_loss(old.clone(), old, adv, mask, ctx)[0])
    # the centre of the whole batch, cut to a micro-batch of one row, gives the whole batch's loss there
    logp, old, adv, mask = _symmetric_drifted_batch(shift=-0.4)
    logp[1] += 0.3  # the second row drifted less: rows' own means differ from the batch's
    whole, _ = grpo_guard_loss(logp, old, adv, mask, ctx)
    stats = batch_statistics("grpo_guard", {}, adv, mask, ctx, logp, old)
    part, _ = grpo_guard_loss(logp[:1], old[:1], adv[:1], mask[:1], make_rollouts([0.0], num_tokens=4), statistics=stats)
    assert torch.allclose(part, whole[:1])


def test_grpo_guard_position_buckets_centre_each_bucket():
    mask = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]])
    old = torch.zeros(2, 4)
    logp = torch.tensor([[0.1, 0.3, -0.2, 0.9], [0.5, -0.1, 0.4, 7.0]])
    _, diagnostics = grpo_guard_loss(logp, old, torch.tensor([1.0, -1.0]), mask, batch_for(mask), bucket_size=2)
    centred = diagnostics["centred_log_ratio"]
    first, second = centred[:, :2], centred[:, 2:]
    assert masked_mean(first, mask[:, :2]).abs() < 1e-6
    assert masked_mean(second, mask[:, 2:]).abs() < 1e-6
    assert centred[1, 3] == 0  # padding: its log-ratio never enters a centre
