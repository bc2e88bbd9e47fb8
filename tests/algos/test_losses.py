"""PPO clipped surrogate: loss values, diagnostics and gradients against hand-computed numbers."""

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.losses import broadcast_advantages
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.registry import losses

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
    loss, _ = ppo_clip_loss(logp, old_logp, torch.tensor([1.0, -1.0]), mask, eps_low=EPS_LOW, eps_high=EPS_HIGH)
    assert loss.shape == (2, 5)
    torch.testing.assert_close(loss, torch.tensor([LOSS_POS, LOSS_NEG]))


def test_diagnostics_by_hand():
    logp, old_logp, mask = _inputs()
    _, diag = ppo_clip_loss(logp, old_logp, torch.tensor([1.0, -1.0]), mask, eps_low=EPS_LOW, eps_high=EPS_HIGH)
    high = torch.tensor([[0.0, 0, 0, 0, 1], [0, 0, 0, 0, 0]])  # rho=1.5 > 1.28 with A > 0
    low = torch.tensor([[0.0, 0, 0, 0, 0], [1, 0, 0, 0, 0]])  # rho=0.5 < 0.8 with A < 0
    torch.testing.assert_close(diag["clip_fraction_high"], high)
    torch.testing.assert_close(diag["clip_fraction_low"], low)
    torch.testing.assert_close(diag["clip_fraction"], high + low)
    assert not any(v.requires_grad for v in diag.values())


def test_gradient_zero_exactly_where_clipped():
    logp, old_logp, mask = _inputs()
    loss, diag = ppo_clip_loss(logp, old_logp, torch.tensor([1.0, -1.0]), mask, eps_low=EPS_LOW, eps_high=EPS_HIGH)
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([GRAD_POS, GRAD_NEG]))
    clipped = diag["clip_fraction"].bool()
    assert torch.equal(logp.grad[clipped], torch.zeros(2))
    assert (logp.grad[~clipped] != 0).all()


def test_token_advantages_match_sequence_advantages():
    logp, old_logp, mask = _inputs()
    token_adv = torch.tensor([[1.0] * 5, [-1.0] * 5])
    loss, diag = ppo_clip_loss(logp, old_logp, token_adv, mask, eps_low=EPS_LOW, eps_high=EPS_HIGH)
    torch.testing.assert_close(loss, torch.tensor([LOSS_POS, LOSS_NEG]))
    torch.testing.assert_close(diag["clip_fraction"].sum(), torch.tensor(2.0))


def test_token_advantages_vary_within_a_row():
    # one row, the sign of A flips per token: rho = 1.5 with A = -2 is unclipped (loss 3.0),
    # rho = 0.5 with A = +2 is unclipped (loss -1.0), rho = 1.5 with A = +2 clips (loss -2.56)
    logp = torch.log(torch.tensor([[1.5, 0.5, 1.5]])).requires_grad_(True)
    adv = torch.tensor([[-2.0, 2.0, 2.0]])
    loss, diag = ppo_clip_loss(logp, torch.zeros(1, 3), adv, torch.ones(1, 3), eps_low=EPS_LOW, eps_high=EPS_HIGH)
    torch.testing.assert_close(loss, torch.tensor([[3.0, -1.0, -2.56]]))
    torch.testing.assert_close(diag["clip_fraction_high"], torch.tensor([[0.0, 0.0, 1.0]]))
    loss.sum().backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[3.0, -1.0, 0.0]]))


def test_symmetric_default_eps():
    logp, old_logp, mask = _inputs()
    loss, _ = ppo_clip_loss(logp, old_logp, torch.tensor([1.0, -1.0]), mask)  # eps_low = eps_high = 0.2
    torch.testing.assert_close(loss[0, 4], torch.tensor(-1.2))


def test_ratio_uses_old_logp_difference():
    # logp = old_logp + log(1.1): same ratio as old_logp = 0, whatever the absolute log-probs
    old = torch.tensor([[-3.0, -0.2]])
    logp = old + math.log(1.1)
    loss, _ = ppo_clip_loss(logp, old, torch.tensor([2.0]), torch.ones(1, 2))
    torch.testing.assert_close(loss, torch.tensor([[-2.2, -2.2]]))


def test_zero_advantage_gives_zero_loss_and_no_clipping():
    logp, old_logp, mask = _inputs()
    loss, diag = ppo_clip_loss(logp, old_logp, torch.zeros(2), mask)
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
    loss, diag = ppo_clip_loss(logp, old, adv, torch.ones(b, t), eps_low=eps_low, eps_high=eps_high)
    loss.sum().backward()
    assert loss.shape == (b, t)
    assert torch.isfinite(loss).all()
    assert torch.isfinite(logp.grad).all()
    # where the clip is active the gradient vanishes
    assert (logp.grad[diag["clip_fraction"].bool()] == 0).all()
    for value in diag.values():
        assert ((value == 0) | (value == 1)).all()
