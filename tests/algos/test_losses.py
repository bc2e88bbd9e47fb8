"""Token-ratio policy losses (PPO clip with dual clip / ratio cap, CISPO, DPPO, SAPO, Clip-Cov, KL-Cov,
ETR, HAPO): loss values, diagnostics and gradients against hand-computed numbers; and finiteness of
every loss of the clipped-ratio family."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.losses import batch_statistics, broadcast_advantages
from grpozoo.algos.losses.clipped import (
    cispo_loss,
    clip_cov_loss,
    dppo_loss,
    etr_loss,
    hapo_loss,
    kl_cov_loss,
    ppo_clip_loss,
    sapo_loss,
)
from grpozoo.registry import losses
from grpozoo.training.forward import rows_of
from tests.factories import batch_for, make_rollouts

RATIOS = [0.5, 0.9, 1.0, 1.1, 1.5]
EPS_LOW, EPS_HIGH = 0.2, 0.28  # clip range [0.8, 1.28]

# loss = -min(rho * A, clip(rho, 0.8, 1.28) * A), by hand:
#   A = +1: -min(0.5, 0.8), -min(0.9, 0.9), -min(1, 1), -min(1.1, 1.1), -min(1.5, 1.28)
LOSS_POS = [-0.5, -0.9, -1.0, -1.1, -1.28]
#   A = -1: -min(-0.5, -0.8), -min(-0.9, -0.9), -min(-1, -1), -min(-1.1, -1.1), -min(-1.5, -1.28)
LOSS_NEG = [0.8, 0.9, 1.0, 1.1, 1.5]
# d loss / d logp = -rho * A where unclipped, 0 where the clip is active
GRAD_POS = [-0.5, -0.9, -1.0, -1.1, 0.0]
GRAD_NEG = [0.0, 0.9, 1.0, 1.1, 1.5]


def _inputs():
    logp = torch.log(torch.tensor([RATIOS, RATIOS])).requires_grad_(True)
    old_logp = torch.zeros(2, 5)
    mask = torch.ones(2, 5)
    return logp, old_logp, mask


def test_ppo_clip_is_registered():
    assert losses.get("ppo_clip") is ppo_clip_loss


def test_loss_values_by_hand_sequence_advantages():
    logp, old_logp, mask = _inputs()
    loss, _ = ppo_clip_loss(
        logp, old_logp, torch.tensor([1.0, -1.0]), mask, batch_for(mask), eps_low=EPS_LOW, eps_high=EPS_HIGH
    )
    assert loss.shape == (2, 5)
    torch.testing.assert_close(loss, torch.tensor([LOSS_POS, LOSS_NEG]))


def test_diagnostics_by_hand():
    logp, old_logp, mask = _inputs()
    _, diag = ppo_clip_loss(
        logp, old_logp, torch.tensor([1.0, -1.0]), mask, batch_for(mask), eps_low=EPS_LOW, eps_high=EPS_HIGH
    )
    high = torch.tensor([[0.0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])  # rho=1.5 > 1.28 with A > 0
    low = torch.tensor([[0.0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])  # rho=0.5 < 0.8 with A < 0
    torch.testing.assert_close(diag["clip_fraction_high"], high)
    torch.testing.assert_close(diag["clip_fraction_low"], low)
    torch.testing.assert_close(diag["clip_fraction"], high + low)
    assert not any(v.requires_grad for v in diag.values())


def test_gradient_zero_exactly_where_clipped():
    logp, old_logp, mask = _inputs()
    loss, diag = ppo_clip_loss(
        logp, old_logp, torch.tensor([1.0, -1.0]), mask, batch_for(mask), eps_low=EPS_LOW, eps_high=EPS_HIGH
    )
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([GRAD_POS, GRAD_NEG]))
    clipped = diag["clip_fraction"].bool()
    assert torch.equal(logp.grad[clipped], torch.zeros(2))
    assert (logp.grad[~clipped] != 0).all()


def test_token_advantages_match_sequence_advantages():
    logp, old_logp, mask = _inputs()
    token_adv = torch.tensor([[1.0] * 5, [-1.0] * 5])
    loss, diag = ppo_clip_loss(
        logp, old_logp, token_adv, mask, batch_for(mask), eps_low=EPS_LOW, eps_high=EPS_HIGH
    )
    torch.testing.assert_close(loss, torch.tensor([LOSS_POS, LOSS_NEG]))
    torch.testing.assert_close(diag["clip_fraction"].sum(), torch.tensor(2.0))


def test_token_advantages_vary_within_a_row():
    # one row, the sign of A flips per token: rho = 1.5 with A = -2 is unclipped (loss 3.0),
    # rho = 0.5 with A = +2 is unclipped (loss -1.0), rho = 1.5 with A = +2 clips (loss -2.56)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5]])).requires_grad_(True)
    adv = torch.tensor([[-2.0, 2.0, 2.0]])
    loss, diag = ppo_clip_loss(
        logp,
        torch.zeros(1, 3),
        adv,
        torch.ones(1, 3),
        batch_for(torch.ones(1, 3)),
        eps_low=EPS_LOW,
        eps_high=EPS_HIGH,
    )
    torch.testing.assert_close(loss, torch.tensor([[3.0, -1.0, -2.56]]))
    torch.testing.assert_close(diag["clip_fraction_high"], torch.tensor([[0.0, 0.0, 1.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[3.0, -1.0, 0.0]]))


def test_symmetric_default_eps():
    logp, old_logp, mask = _inputs()
    loss, _ = ppo_clip_loss(
        logp, old_logp, torch.tensor([1.0, -1.0]), mask, batch_for(mask)
    )  # eps_low = eps_high = 0.2
    torch.testing.assert_close(loss[0, 4], torch.tensor(-1.2))


def test_ratio_uses_old_logp_difference():
    # logp = old_logp + log(1.1): same ratio as old_logp = 0, whatever the absolute log-probs
    old = torch.tensor([[-3.0, -0.2]])
    logp = old + math.log(1.1)
    loss, _ = ppo_clip_loss(logp, old, torch.tensor([2.0]), torch.ones(1, 2), batch_for(torch.ones(1, 2)))
    torch.testing.assert_close(loss, torch.tensor([[-2.2, -2.2]]))


def test_zero_advantage_gives_zero_loss_and_no_clipping():
    logp, old_logp, mask = _inputs()
    loss, diag = ppo_clip_loss(logp, old_logp, torch.zeros(2), mask, batch_for(mask))
    assert torch.equal(loss, torch.zeros(2, 5))
    assert diag["clip_fraction"].sum().item() == 0.0


def test_broadcast_advantages_shapes():
    like = torch.zeros(3, 4)
    assert broadcast_advantages(torch.ones(3), like).shape == (3, 1)
    assert broadcast_advantages(torch.ones(3, 4), like).shape == (3, 4)


finite = st.floats(-60.0, 60.0, allow_nan=False, width=32)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.data(),
    st.floats(0.0, 0.9),
    st.floats(0.0, 5.0),
    st.booleans(),
)
def test_property_finite_loss_and_gradient(b, t, data, eps_low, eps_high, token_level):
    logp = torch.tensor(data.draw(st.lists(finite, min_size=b * t, max_size=b * t))).view(b, t)
    old = torch.tensor(data.draw(st.lists(finite, min_size=b * t, max_size=b * t))).view(b, t)
    n_adv = b * t if token_level else b
    adv = torch.tensor(data.draw(st.lists(st.floats(-10, 10, width=32), min_size=n_adv, max_size=n_adv)))
    adv = adv.view(b, t) if token_level else adv
    logp.requires_grad_(True)
    loss, diag = ppo_clip_loss(
        logp, old, adv, torch.ones(b, t), batch_for(torch.ones(b, t)), eps_low=eps_low, eps_high=eps_high
    )
    loss.sum().backward()
    assert loss.shape == (b, t)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(logp.grad).all()
    # where the clip is active the gradient vanishes
    assert (logp.grad[diag["clip_fraction"].bool()] == 0).all()
    for value in diag.values():
        assert ((value == 0) | (value == 1)).all()


# ----------------------------------------------------------------------------------------------------
# ppo_clip: dual clip, ratio cap, tensor-valued epsilons

DUAL_RATIOS = [0.5, 0.9, 1.0, 1.1, 1.5, 4.0]


def _ratio_row(ratios, rows=1):
    return torch.log(torch.tensor([ratios] * rows)).requires_grad_(True)


def test_dual_clip_by_hand():
    logp = _ratio_row(DUAL_RATIOS, rows=2)
    adv = torch.tensor([-1.0, 1.0])
    loss, diag = ppo_clip_loss(
        logp,
        torch.zeros(2, 6),
        adv,
        torch.ones(2, 6),
        batch_for(torch.ones(2, 6)),
        eps_low=0.2,
        eps_high=0.28,
        dual_clip=3.0,
    )
    # A = -1: max(rho, clip(rho, 0.8, 1.28)) capped at c = 3; A = +1: unchanged by the dual clip
    torch.testing.assert_close(loss[0], torch.tensor([0.8, 0.9, 1.0, 1.1, 1.5, 3.0]))
    torch.testing.assert_close(loss[1], torch.tensor([-0.5, -0.9, -1.0, -1.1, -1.28, -1.28]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad[0], torch.tensor([0.0, 0.9, 1.0, 1.1, 1.5, 0.0]))
    torch.testing.assert_close(diag["dual_clip_fraction"][0], torch.tensor([0.0, 0, 0, 0, 0, 1]))
    assert diag["dual_clip_fraction"][1].sum() == 0
    torch.testing.assert_close(diag["clip_fraction"][0], torch.tensor([1.0, 0, 0, 0, 0, 1]))


def test_without_dual_clip_the_negative_loss_is_unbounded():
    logp = _ratio_row([4.0])
    loss, diag = ppo_clip_loss(
        logp, torch.zeros(1, 1), torch.tensor([-1.0]), torch.ones(1, 1), batch_for(torch.ones(1, 1))
    )
    assert loss.item() == pytest.approx(4.0)
    assert "dual_clip_fraction" not in diag


def test_ratio_cap_by_hand():
    logp = _ratio_row([1.5, 4.0], rows=2)
    adv = torch.tensor([-1.0, 1.0])
    loss, diag = ppo_clip_loss(
        logp,
        torch.zeros(2, 2),
        adv,
        torch.ones(2, 2),
        batch_for(torch.ones(2, 2)),
        eps_low=0.2,
        eps_high=0.28,
        ratio_cap=2.0,
    )
    # A = -1: -min(min(rho, 2)*A, clip(rho)*A) = max(min(rho, 2), 1.28); A = +1: -min(min(rho, 2), 1.28)
    torch.testing.assert_close(loss, torch.tensor([[1.5, 2.0], [-1.28, -1.28]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[1.5, 0.0], [0.0, 0.0]]))
    torch.testing.assert_close(diag["ratio_cap_fraction"], torch.tensor([[0.0, 1.0], [0.0, 1.0]]))


def test_ratio_cap_below_the_clip_range_caps_positive_tokens_too():
    logp = _ratio_row([1.2])
    loss, _ = ppo_clip_loss(
        logp,
        torch.zeros(1, 1),
        torch.tensor([1.0]),
        torch.ones(1, 1),
        batch_for(torch.ones(1, 1)),
        eps_high=0.28,
        ratio_cap=1.1,
    )
    loss.sum().backward()
    torch.testing.assert_close(loss, torch.tensor([[-1.1]]))
    assert logp.grad.item() == 0.0


@pytest.mark.parametrize("param", ["dual_clip", "ratio_cap"])
def test_dual_clip_and_ratio_cap_must_exceed_one(param):
    with pytest.raises(ValueError, match="greater than 1"):
        ppo_clip_loss(
            torch.zeros(1, 1),
            torch.zeros(1, 1),
            torch.ones(1),
            torch.ones(1, 1),
            batch_for(torch.ones(1, 1)),
            **{param: 1.0},
        )


def test_tensor_epsilons_per_row():
    logp = _ratio_row([1.3, 0.6], rows=2)
    eps_high = torch.tensor([[0.1], [0.5]])
    eps_low = torch.tensor([[0.5], [0.1]])
    loss, _ = ppo_clip_loss(
        logp,
        torch.zeros(2, 2),
        torch.tensor([1.0, -1.0]),
        torch.ones(2, 2),
        batch_for(torch.ones(2, 2)),
        eps_low=eps_low,
        eps_high=eps_high,
    )
    # row 0 (A=+1): 1.3 clips at 1.1, 0.6 is below 1 and stays; row 1 (A=-1): 1.3 stays, 0.6 clips at 0.9
    torch.testing.assert_close(loss, torch.tensor([[-1.1, -0.6], [1.3, 0.9]]))


def test_padding_gets_zero_loss_and_no_gradient():
    logp = torch.tensor([[0.1, 30.0]], requires_grad=True)
    loss, diag = ppo_clip_loss(
        logp,
        torch.zeros(1, 2),
        torch.tensor([1.0]),
        torch.tensor([[1.0, 0.0]]),
        batch_for(torch.tensor([[1.0, 0.0]])),
    )
    loss.sum().backward()
    assert loss[0, 1] == 0 and logp.grad[0, 1] == 0
    assert all(v[0, 1] == 0 for v in diag.values())


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-5, 5, width=32), min_size=4, max_size=4), st.floats(-5, -0.01), st.floats(1.01, 5.0)
)
def test_property_dual_clip_caps_negative_loss(log_ratios, adv, c):
    logp = torch.tensor([log_ratios])
    loss, _ = ppo_clip_loss(
        logp,
        torch.zeros(1, 4),
        torch.tensor([adv]),
        torch.ones(1, 4),
        batch_for(torch.ones(1, 4)),
        dual_clip=c,
    )
    assert (loss <= -c * adv + 1e-5).all()


# ----------------------------------------------------------------------------------------------------
# CISPO


def test_cispo_by_hand():
    ratios = [0.5, 1.0, 1.5, 6.0]
    logp = _ratio_row(ratios)
    loss, diag = cispo_loss(
        logp,
        torch.zeros(1, 4),
        torch.tensor([2.0]),
        torch.ones(1, 4),
        batch_for(torch.ones(1, 4)),
        eps_low=0.2,
        eps_high=0.28,
    )
    weights = [0.8, 1.0, 1.28, 1.28]  # clip(rho, 0.8, 1.28), detached
    expected = [-w * 2.0 * math.log(r) for w, r in zip(weights, ratios, strict=True)]
    torch.testing.assert_close(loss, torch.tensor([expected]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.6, -2.0, -2.56, -2.56]]))
    torch.testing.assert_close(diag["clip_fraction"], torch.tensor([[1.0, 0.0, 1.0, 1.0]]))


def test_cispo_default_range_has_no_lower_bound_and_caps_the_weight_at_five():
    logp = _ratio_row([0.01, 9.0])
    loss, diag = cispo_loss(
        logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), batch_for(torch.ones(1, 2))
    )
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-0.01, -5.0]]))
    torch.testing.assert_close(diag["is_weight"], torch.tensor([[0.01, 5.0]]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-15, 15, width=32), min_size=6, max_size=6),
    st.lists(st.floats(0.1, 5), min_size=2, max_size=2),
    st.booleans(),
)
def test_property_cispo_never_zeroes_a_gradient(log_ratios, magnitudes, negative):
    logp = torch.tensor(log_ratios).view(2, 3).requires_grad_(True)
    adv = torch.tensor(magnitudes) * (-1 if negative else 1)
    loss, _ = cispo_loss(
        logp,
        torch.zeros(2, 3),
        adv,
        torch.ones(2, 3),
        batch_for(torch.ones(2, 3)),
        eps_low=0.2,
        eps_high=0.28,
    )
    loss.sum().backward()
    assert (logp.grad != 0).all()
    # where PPO clips, PPO's gradient is 0 while CISPO's is the clipped weight times A
    ppo_logp = logp.detach().clone().requires_grad_(True)
    ppo, diag = ppo_clip_loss(
        ppo_logp,
        torch.zeros(2, 3),
        adv,
        torch.ones(2, 3),
        batch_for(torch.ones(2, 3)),
        eps_low=0.2,
        eps_high=0.28,
    )
    ppo.sum().backward()
    assert (ppo_logp.grad[diag["clip_fraction"].bool()] == 0).all()


# ----------------------------------------------------------------------------------------------------
# DPPO (binary total-variation trust region)


def test_dppo_by_hand():
    probs = [0.8, 0.65, 0.5, 0.2, 0.35]
    logp = torch.log(torch.tensor([probs, probs])).requires_grad_(True)
    old = torch.full((2, 5), math.log(0.5))
    loss, diag = dppo_loss(
        logp, old, torch.tensor([1.0, -1.0]), torch.ones(2, 5), batch_for(torch.ones(2, 5)), delta=0.2
    )
    # p - p_old = [0.3, 0.15, 0, -0.3, -0.15]: A>0 drops the first (moved up by > 0.2),
    # A<0 drops the fourth (moved down by > 0.2); the rest get -rho*A*logp
    rho = [p / 0.5 for p in probs]
    inside = [[0, 1, 1, 1, 1], [1, 1, 1, 0, 1]]
    expected = [
        [-a * r * math.log(p) * k for r, p, k in zip(rho, probs, row, strict=True)]
        for a, row in ((1, inside[0]), (-1, inside[1]))
    ]
    torch.testing.assert_close(loss, torch.tensor(expected))
    loss.sum().backward()
    grad = [
        [-a * r * k for r, k in zip(rho, row, strict=True)] for a, row in ((1, inside[0]), (-1, inside[1]))
    ]
    torch.testing.assert_close(logp.grad, torch.tensor(grad))
    torch.testing.assert_close(diag["clip_fraction"], 1 - torch.tensor(inside, dtype=torch.float32))
    torch.testing.assert_close(diag["prob_shift"], torch.tensor([[0.3, 0.15, 0, 0.3, 0.15]] * 2))


def test_dppo_lets_a_rare_token_grow_many_fold_where_ppo_clips():
    logp = torch.log(torch.tensor([[0.04]])).requires_grad_(True)  # rho = 4 from p_old = 0.01
    old = torch.log(torch.tensor([[0.01]]))
    loss, diag = dppo_loss(logp, old, torch.tensor([1.0]), torch.ones(1, 1), batch_for(torch.ones(1, 1)))
    loss.sum().backward()
    assert diag["clip_fraction"].item() == 0 and logp.grad.item() == pytest.approx(-4.0)
    _, ppo_diag = ppo_clip_loss(
        logp.detach(), old, torch.tensor([1.0]), torch.ones(1, 1), batch_for(torch.ones(1, 1))
    )
    assert ppo_diag["clip_fraction"].item() == 1


# ----------------------------------------------------------------------------------------------------
# SAPO


def test_sapo_on_policy_value_and_gradient():
    logp = torch.zeros(2, 3, requires_grad=True)
    loss, diag = sapo_loss(
        logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), torch.ones(2, 3), batch_for(torch.ones(2, 3))
    )
    # f(1) = sigmoid(0) * 4 / tau = 2 / tau: tau_pos = 1 for A>0, tau_neg = 1.05 for A<0
    torch.testing.assert_close(loss, torch.tensor([[-2.0] * 3, [2.0 / 1.05] * 3]))
    loss.sum().backward()
    # the gradient equals the unclipped surrogate's -A at rho = 1, whatever tau
    torch.testing.assert_close(logp.grad, torch.tensor([[-1.0] * 3, [1.0] * 3]))
    torch.testing.assert_close(diag["gate_weight"], torch.ones(2, 3))


def test_sapo_off_policy_by_hand():
    logp = _ratio_row([2.0])
    loss, _ = sapo_loss(
        logp, torch.zeros(1, 1), torch.tensor([1.0]), torch.ones(1, 1), batch_for(torch.ones(1, 1))
    )
    s = 1 / (1 + math.exp(-1.0))  # sigmoid(tau * (rho - 1)) with tau = 1, rho = 2
    torch.testing.assert_close(loss, torch.tensor([[-4 * s]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-4 * s * (1 - s) * 2.0]]))  # 4σ(1−σ)·ρ·A


def test_sapo_gate_decays_smoothly_where_ppo_clips():
    logp = _ratio_row([1.5, 3.0])
    loss, _ = sapo_loss(
        logp, torch.zeros(1, 2), torch.tensor([1.0]), torch.ones(1, 2), batch_for(torch.ones(1, 2))
    )
    loss.sum().backward()
    grads = logp.grad[0]
    assert (grads < 0).all() and abs(grads[1]) < abs(grads[0])
    steep = _ratio_row([1.5])
    loss, _ = sapo_loss(
        steep,
        torch.zeros(1, 1),
        torch.tensor([1.0]),
        torch.ones(1, 1),
        batch_for(torch.ones(1, 1)),
        tau_pos=4.0,
    )
    loss.sum().backward()
    assert abs(steep.grad.item()) < abs(grads[0])  # a larger temperature damps faster


# ----------------------------------------------------------------------------------------------------
# Clip-Cov and KL-Cov

# logp [[0, -1], [-4, -3]] has mean -2; A = [1, -1] has mean 0 -> cov = [[2, 1], [2, 1]]
COV_LOGP = [[0.0, -1.0], [-4.0, -3.0]]
COV_ADV = torch.tensor([1.0, -1.0])


def test_covariance_by_hand():
    logp = torch.tensor(COV_LOGP)
    _, diag = clip_cov_loss(logp, logp, COV_ADV, torch.ones(2, 2), batch_for(torch.ones(2, 2)))
    torch.testing.assert_close(diag["covariance"], torch.tensor([[2.0, 1.0], [2.0, 1.0]]))


def test_clip_cov_detaches_in_range_tokens_by_hand():
    logp = torch.tensor(COV_LOGP, requires_grad=True)
    # clip_ratio 0.5 of 4 tokens = 2 picks; candidates are cov in (1, 5): the two cov = 2 tokens
    loss, diag = clip_cov_loss(
        logp, logp.detach(), COV_ADV, torch.ones(2, 2), batch_for(torch.ones(2, 2)), clip_ratio=0.5
    )
    torch.testing.assert_close(loss, torch.tensor([[-1.0, -1.0], [1.0, 1.0]]))  # values kept
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -1.0], [0.0, 1.0]]))
    torch.testing.assert_close(diag["cov_detached_fraction"], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))


def test_clip_cov_skips_tokens_ppo_already_clipped():
    logp = torch.tensor(COV_LOGP, requires_grad=True)
    old = logp.detach().clone()
    old[0, 0] = -math.log(2.0)  # rho = 2 with A > 0: PPO clips it
    loss, diag = clip_cov_loss(
        logp, old, COV_ADV, torch.ones(2, 2), batch_for(torch.ones(2, 2)), clip_ratio=1.0
    )
    torch.testing.assert_close(diag["cov_detached_fraction"], torch.tensor([[0.0, 0.0], [1.0, 0.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -1.0], [0.0, 1.0]]))


def test_clip_cov_default_picks_one_token_reproducibly_from_seed_and_step():
    logp = torch.tensor(COV_LOGP)
    picks = []
    for seed in range(12):
        ctx = make_rollouts([1.0, 0.0], num_tokens=2, step=3)
        _, diag = clip_cov_loss(logp, logp, COV_ADV, torch.ones(2, 2), ctx, seed=seed)
        detached = diag["cov_detached_fraction"]
        assert detached.sum() == 1 and detached[:, 1].sum() == 0  # one pick, always a candidate
        _, again = clip_cov_loss(logp, logp, COV_ADV, torch.ones(2, 2), ctx, seed=seed)
        assert torch.equal(again["cov_detached_fraction"], detached)
        picks.append(int(detached[1, 0]))
    assert 0 < sum(picks) < len(picks)  # the draw is random across seeds


def test_kl_cov_by_hand():
    logp = torch.tensor(COV_LOGP, requires_grad=True)
    old = logp.detach() - 0.1  # rho = e^0.1 everywhere
    loss, diag = kl_cov_loss(
        logp, old, COV_ADV, torch.ones(2, 2), batch_for(torch.ones(2, 2)), kl_ratio=0.5, kl_coef=1.0
    )
    rho = math.exp(0.1)
    # top 2 of 4 by cov: the cov = 2 tokens get + |logp - old| = 0.1; the surrogate -rho*A is unclipped
    torch.testing.assert_close(loss, torch.tensor([[-rho + 0.1, -rho], [rho + 0.1, rho]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-rho + 1, -rho], [rho + 1, rho]]))
    torch.testing.assert_close(diag["kl_cov_fraction"], torch.tensor([[1.0, 0.0], [1.0, 0.0]]))


def test_kl_cov_penalises_at_least_one_real_token_and_never_padding():
    logp = torch.tensor([[0.0, 5.0], [-4.0, 9.0]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    _, diag = kl_cov_loss(logp, logp - 0.1, COV_ADV, mask, batch_for(mask))
    assert diag["kl_cov_fraction"].sum() == 1 and (diag["kl_cov_fraction"] * (1 - mask)).sum() == 0


# ----------------------------------------------------------------------------------------------------
# ETR (Zhang et al. 2026, "ETR: Outcome-Guided Elastic Trust Regions for Policy Optimization")


def _etr_ctx(rewards, group_ids=None):
    return make_rollouts(rewards, group_ids, num_tokens=3)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-1.0, 1.0, width=32), min_size=24, max_size=24), st.floats(0.1, 3.0))
def test_property_etr_with_equal_factors_is_ppo_clip(log_ratios, magnitude):
    # two groups with equal reward std and equal |A| everywhere: every factor normalises to 1
    ctx = _etr_ctx([1.0, 0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 1.0], [0, 0, 0, 0, 1, 1, 1, 1])
    adv = magnitude * torch.tensor([1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0])
    logp = torch.tensor(log_ratios).view(8, 3).requires_grad_(True)
    etr, diag = etr_loss(logp, torch.zeros(8, 3), adv, torch.ones(8, 3), ctx, eps_low=0.2, eps_high=0.28)
    etr.sum().backward()
    ref_logp = logp.detach().clone().requires_grad_(True)
    ppo, _ = ppo_clip_loss(
        ref_logp,
        torch.zeros(8, 3),
        adv,
        torch.ones(8, 3),
        batch_for(torch.ones(8, 3)),
        eps_low=0.2,
        eps_high=0.28,
    )
    ppo.sum().backward()
    torch.testing.assert_close(etr, ppo)
    torch.testing.assert_close(logp.grad, ref_logp.grad)
    torch.testing.assert_close(diag["eps_scale"], torch.ones(8, 3))


def test_etr_widens_the_range_for_a_large_advantage_by_hand():
    # one group, rewards [1, 0, 0, 0]: GRPO A = [1.5, -0.5, -0.5, -0.5]
    # micro factors 1 + |A|/max|A| = [2, 4/3, 4/3, 4/3], mean 1.5 -> [4/3, 8/9, 8/9, 8/9]
    ctx = _etr_ctx([1.0, 0.0, 0.0, 0.0])
    adv = torch.tensor([1.5, -0.5, -0.5, -0.5])
    ratios = torch.tensor([[1.25] * 3, [0.81] * 3, [1.0] * 3, [1.0] * 3])
    logp = torch.log(ratios).requires_grad_(True)
    loss, diag = etr_loss(logp, torch.zeros(4, 3), adv, torch.ones(4, 3), ctx)
    torch.testing.assert_close(diag["eps_scale"][:, 0], torch.tensor([4 / 3, 8 / 9, 8 / 9, 8 / 9]))
    # row 0: eps = 0.2667 > 0.25, so rho = 1.25 is not clipped (PPO with 0.2 clips it at 1.2)
    # row 1: eps = 0.1778, lower bound 0.8222 > 0.81: clipped (PPO with 0.2 does not clip)
    torch.testing.assert_close(loss[0], torch.full((3,), -1.875))
    torch.testing.assert_close(loss[1], torch.full((3,), 0.5 * (1 - 0.2 * 8 / 9)))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad[0], torch.full((3,), -1.875))
    torch.testing.assert_close(logp.grad[1], torch.zeros(3))
    _, ppo_diag = ppo_clip_loss(
        logp.detach(), torch.zeros(4, 3), adv, torch.ones(4, 3), batch_for(torch.ones(4, 3))
    )
    torch.testing.assert_close(ppo_diag["clip_fraction"][:2, 0], torch.tensor([1.0, 0.0]))


def test_etr_group_factor_by_hand():
    # group reward stds (population): [1, 0] -> 0.5, [0.5, 0.3] -> 0.1; row mean 0.3 -> [5/3, 5/3, 1/3, 1/3]
    ctx = _etr_ctx([1.0, 0.0, 0.5, 0.3], [0, 0, 1, 1])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    _, diag = etr_loss(torch.zeros(4, 3), torch.zeros(4, 3), adv, torch.ones(4, 3), ctx)
    torch.testing.assert_close(diag["eps_scale"][:, 0], torch.tensor([5 / 3, 5 / 3, 1 / 3, 1 / 3]))
    _, off = etr_loss(torch.zeros(4, 3), torch.zeros(4, 3), adv, torch.ones(4, 3), ctx, group_factor=False)
    torch.testing.assert_close(off["eps_scale"], torch.ones(4, 3))


def test_etr_clip_range_factors_come_from_the_whole_batch():
    # |A| of the last row sets max|A|, and its group's std sets mean σ: a sub-batch without it
    # scales differently on its own, and as the whole batch does with the whole batch's statistics
    ctx = _etr_ctx([1.0, 0.0, 0.5, 0.3, 1.0, 0.0], [0, 0, 1, 1, 2, 2])
    adv, mask = torch.tensor([0.5, -0.5, 0.2, -0.2, 3.0, -3.0]), torch.ones(6, 3)
    stats = batch_statistics("etr", {}, adv, mask, ctx)
    _, whole = etr_loss(torch.zeros(6, 3), torch.zeros(6, 3), adv, mask, ctx)
    rows = torch.arange(4)
    sub = (torch.zeros(4, 3), torch.zeros(4, 3), adv[rows], mask[rows], ctx.select(rows))
    _, with_batch = etr_loss(*sub, statistics=rows_of(stats, rows, 3))
    _, on_its_own = etr_loss(*sub)
    torch.testing.assert_close(with_batch["eps_scale"], whole["eps_scale"][rows])
    assert not torch.allclose(on_its_own["eps_scale"], whole["eps_scale"][rows])


# ----------------------------------------------------------------------------------------------------
# HAPO parts (d), (e) (Liu et al. 2025, "From Uniform to Heterogeneous: Tailoring Policy
# Optimization to Every Token's Nature")


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(-3.0, 3.0, width=32), min_size=12, max_size=12), st.floats(0.01, 2.0))
def test_property_hapo_with_zero_entropy_score_is_dual_clip_ppo(log_ratios, entropy):
    # equal entropies give h = 0 on every token: ranges and advantages unchanged
    ctx = make_rollouts([1.0, 0.0, 1.0], num_tokens=4, entropies=torch.full((3, 4), entropy))
    adv = torch.tensor([1.2, -0.7, 0.4])
    logp = torch.tensor(log_ratios).view(3, 4).requires_grad_(True)
    hapo, diag = hapo_loss(logp, torch.zeros(3, 4), adv, torch.ones(3, 4), ctx)
    hapo.sum().backward()
    ref_logp = logp.detach().clone().requires_grad_(True)
    ppo, _ = ppo_clip_loss(
        ref_logp,
        torch.zeros(3, 4),
        adv,
        torch.ones(3, 4),
        batch_for(torch.ones(3, 4)),
        eps_low=0.2,
        eps_high=0.28,
        dual_clip=3.0,
    )
    ppo.sum().backward()
    assert (diag["entropy_score"] == 0).all()
    torch.testing.assert_close(hapo, ppo)
    torch.testing.assert_close(logp.grad, ref_logp.grad)


def test_hapo_by_hand():
    # log H = [-2, 0, 0, 1] in both rows: median 0, so h = [-1, 0, 0, 1]
    entropies = torch.exp(torch.tensor([[-2.0, 0.0, 0.0, 1.0]] * 2))
    ctx = make_rollouts([1.0, 0.0], num_tokens=4, entropies=entropies)
    ratios = torch.tensor([[1.0, 1.0, 1.0, 1.5], [0.7, 1.0, 1.0, 1.0]])
    logp = torch.log(ratios).requires_grad_(True)
    loss, diag = hapo_loss(logp, torch.zeros(2, 4), torch.tensor([1.0, -1.0]), torch.ones(2, 4), ctx)
    torch.testing.assert_close(diag["entropy_score"][0], torch.tensor([-1.0, 0.0, 0.0, 1.0]))
    # row 0, A = +1:
    #   token 0 (h = -1) sits in the neutral zone (0.8, 1.14): A_ent = A(1 + h) = 0 -> loss 0
    #   tokens 1, 2 (h = 0): A -> loss -1
    #   token 3 (h = 1): eps_high = 0.28*2 = 0.56, rho = 1.5 leaves the zone (0.9, 1.28): A_ent = 2,
    #   not clipped (1.5 < 1.56) -> loss -3, gradient -3 (plain PPO would clip at 1.28)
    # row 1, A = -1:
    #   token 0 (h = -1): eps_low = 0.2*2 = 0.4, rho = 0.7 is outside the zone (0.8, 1.14) -> A,
    #   not clipped (0.7 > 0.6) -> loss 0.7, gradient 0.7 (plain PPO would clip at 0.8)
    #   tokens 1-3 at rho = 1 -> loss 1
    torch.testing.assert_close(loss, torch.tensor([[0.0, -1.0, -1.0, -3.0], [0.7, 1.0, 1.0, 1.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[0.0, -1.0, -1.0, -3.0], [0.7, 1.0, 1.0, 1.0]]))
    torch.testing.assert_close(diag["advantage_redistributed"][:, 0], torch.tensor([1.0, 0.0]))
    torch.testing.assert_close(diag["advantage_redistributed"][:, 3], torch.tensor([1.0, 0.0]))


def test_hapo_needs_entropies():
    ctx = make_rollouts([1.0], num_tokens=2, entropies=None)
    with pytest.raises(ValueError, match="ctx.entropies"):
        hapo_loss(torch.zeros(1, 2), torch.zeros(1, 2), torch.ones(1), torch.ones(1, 2), ctx)


# ----------------------------------------------------------------------------------------------------
# every loss of the clipped-ratio family: finite values and gradients, padding inert

FAMILY = [
    "ppo_clip", "cispo", "dppo", "sapo", "clip_cov", "kl_cov", "etr", "hapo",
    "gspo", "gspo_token", "gmpo", "dhpo", "sspo", "minpro",
]  # fmt: skip


@pytest.mark.parametrize("name", FAMILY)
def test_family_is_registered(name):
    assert callable(losses.get(name))


@settings(max_examples=30, deadline=None)
@given(st.sampled_from(FAMILY), st.integers(1, 4), st.integers(1, 5), st.data(), st.booleans())
def test_property_family_finite_with_inert_padding(name, b, t, data, token_level):
    values = st.lists(finite, min_size=b * t, max_size=b * t)
    logp = torch.tensor(data.draw(values)).view(b, t).requires_grad_(True)
    old = torch.tensor(data.draw(values)).view(b, t)
    lengths = data.draw(st.lists(st.integers(0, t), min_size=b, max_size=b))  # includes empty rows
    words = st.sampled_from(["a", " b", ".", ",\n", "7", ""])
    texts = [data.draw(st.lists(words, min_size=n, max_size=n)) for n in lengths]
    entropies = torch.tensor(
        data.draw(st.lists(st.floats(0.0, 8.0, width=32), min_size=b * t, max_size=b * t))
    )
    rewards = data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0]), min_size=b, max_size=b))
    groups = data.draw(st.lists(st.integers(0, 1), min_size=b, max_size=b))
    ctx = make_rollouts(
        rewards,
        groups,
        lengths=lengths,
        num_tokens=t,
        entropies=entropies.view(b, t),
        completion_token_texts=texts,
    )
    mask = ctx.completion_mask.float()
    n_adv = b * t if token_level else b
    adv = torch.tensor(data.draw(st.lists(st.floats(-10, 10, width=32), min_size=n_adv, max_size=n_adv)))
    adv = adv.view(b, t) if token_level else adv
    loss, diag = losses.get(name)(logp, old, adv, mask, ctx)
    assert loss.shape == (b, t)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and torch.isfinite(logp.grad).all()
    pad = mask == 0
    assert (loss[pad] == 0).all() and (logp.grad[pad] == 0).all()
    for value in diag.values():
        assert value.shape == (b, t) and not value.requires_grad
        assert torch.isfinite(value).all() and (value[pad] == 0).all()


@pytest.mark.parametrize("name", FAMILY)
def test_family_all_zero_mask(name):
    ctx = make_rollouts([1.0, 0.0], lengths=[0, 0], num_tokens=3)
    logp = torch.randn(2, 3, requires_grad=True)
    loss, _ = losses.get(name)(logp, torch.randn(2, 3), torch.tensor([1.0, -1.0]), torch.zeros(2, 3), ctx)
    loss.sum().backward()
    assert torch.equal(loss, torch.zeros(2, 3)) and torch.equal(logp.grad, torch.zeros(2, 3))


# ----------------------------------------------------------------------------------------------------
# Two-phase losses: statistics over the whole batch, loss per micro-batch

TWO_PHASE_PARAMS = {
    "aepo": {"coef": 0.5, "target_entropy": 0.81},  # the batch mean entropy is 0.80, one sub-batch 0.83
    "clip_cov": {"clip_ratio": 0.3, "cov_low": -5.0},
    "dhpo": {"mix": "entropy"},
    "etr": {},
    "grpo_guard": {},
    "hapo": {},
    "kl_cov": {"kl_ratio": 0.3},
    "r2vpo": {},
    "sspo": {},
}


def test_exactly_the_losses_that_take_batch_statistics_are_two_phase():
    registered = {n for n in losses.names() if losses.spec(n).statistics or losses.spec(n).policy_statistics}
    assert registered == set(TWO_PHASE_PARAMS)


def _batch_of_eight(seed: int = 0):
    """Eight completions in four groups, of unequal lengths, with every field a two-phase loss reads;
    log-probs differ from the old ones."""
    gen = torch.Generator().manual_seed(seed)
    lengths = [5, 3, 4, 1, 5, 2, 4, 3]
    ctx = make_rollouts(
        torch.rand(8, generator=gen),
        [0, 0, 1, 1, 2, 2, 3, 3],
        lengths=lengths,
        entropies=torch.rand(8, 5, generator=gen) * 2,
        completion_token_texts=[[["a", ".", " b", ",", "c"][j] for j in range(n)] for n in lengths],
        state={"r2vpo": {"lambda": 2.0}},
    )
    mask = ctx.completion_mask.float()
    logp = -torch.rand(8, 5, generator=gen) * 3 * mask
    old = logp + 0.3 * torch.randn(8, 5, generator=gen) * mask
    return logp, old, torch.randn(8, generator=gen), mask, ctx


def _value_and_grad(fn, logp, *args, **params):
    """The loss and the gradient of its sum with respect to ``logp``."""
    x = logp.clone().requires_grad_(True)
    loss, _ = fn(x, *args, **params)
    loss.sum().backward()
    return loss.detach(), x.grad


@pytest.mark.parametrize("name", sorted(TWO_PHASE_PARAMS))
def test_two_phase_loss_on_a_sub_batch_with_the_batch_statistics_is_the_batch_loss_there(name):
    logp, old, adv, mask, ctx = _batch_of_eight()
    fn, params = losses.get(name), TWO_PHASE_PARAMS[name]
    stats = batch_statistics(name, params, adv, mask, ctx, logp, old)
    whole, whole_grad = _value_and_grad(fn, logp, old, adv, mask, ctx, **params)
    own_statistics_differ = False
    for rows in (torch.tensor([0, 1, 3]), torch.tensor([2, 4, 5, 6, 7])):
        width = int(mask[rows].sum(dim=1).max())  # a micro-batch is trimmed to its longest completion
        sub = (logp[rows, :width], old[rows, :width], adv[rows], mask[rows, :width], ctx.select(rows))
        part, grad = _value_and_grad(fn, *sub, statistics=rows_of(stats, rows, width), **params)
        torch.testing.assert_close(part, whole[rows, :width])
        torch.testing.assert_close(grad, whole_grad[rows, :width])
        own, own_grad = _value_and_grad(fn, *sub, **params)
        own_statistics_differ |= not (torch.allclose(own, part) and torch.allclose(own_grad, grad))
    assert own_statistics_differ, "the sub-batch's own statistics should change the loss or its gradient"
