"""REINFORCE and the REC family (Yao et al. 2025, arXiv:2509.24203: REC masks, OPMD's k2 regulariser,
AsymRE's shifted baseline), checked against hand-computed values."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.losses.reinforce import asymre_loss, opmd_loss, rec_loss, reinforce_loss
from grpozoo.registry import losses
from tests.factories import batch_for

RATIOS = [0.3, 0.5, 1.0, 1.5, 3.5]


def _ratio_inputs(ratios=RATIOS, rows=2):
    """logp = log ρ over old_logp = 0, so the ratio of each token is exactly ``ratios``."""
    logp = torch.log(torch.tensor([ratios] * rows)).requires_grad_(True)
    return logp, torch.zeros(rows, len(ratios)), torch.ones(rows, len(ratios))


def _grad(fn, logp, old, adv, mask, **params):
    loss, diag = fn(logp, old, adv, mask, None, **params)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    return loss, grad, diag


def test_names_are_registered():
    assert losses.get("reinforce") is reinforce_loss
    assert losses.get("rec") is rec_loss
    assert losses.get("opmd") is opmd_loss
    assert losses.get("asymre") is asymre_loss


# ------------------------------------------------------------------------- REINFORCE


def test_reinforce_value_and_gradient_are_minus_a_logp():
    logp = torch.tensor([[-0.5, -2.0], [-1.0, -0.1]], requires_grad=True)
    old = torch.full((2, 2), -7.0)  # irrelevant without an importance weight
    loss, grad, _ = _grad(reinforce_loss, logp, old, torch.tensor([2.0, -1.0]), torch.ones(2, 2))
    torch.testing.assert_close(loss, torch.tensor([[1.0, 4.0], [-1.0, -0.1]]))
    torch.testing.assert_close(grad, torch.tensor([[-2.0, -2.0], [1.0, 1.0]]))


def test_reinforce_ratio_weight_is_the_unclipped_is_gradient():
    logp, old, mask = _ratio_inputs()
    loss, grad, diag = _grad(
        reinforce_loss, logp, old, torch.tensor([1.0, -2.0]), mask, importance_weight="ratio"
    )
    # loss = −ρ·A, d/dlogp = −ρ·A, no clipping anywhere (3.5 and 0.3 keep their gradient)
    torch.testing.assert_close(loss, torch.tensor([[-r for r in RATIOS], [2 * r for r in RATIOS]]))
    torch.testing.assert_close(grad, loss)
    torch.testing.assert_close(diag["ratio"], torch.tensor([RATIOS, RATIOS]))


def test_reinforce_both_forms_agree_on_policy():
    logp = torch.tensor([[-0.3, -1.7, -0.9]], requires_grad=True)
    adv = torch.tensor([0.7])
    _, g_none, _ = _grad(reinforce_loss, logp, logp.detach(), adv, torch.ones(1, 3))
    _, g_ratio, _ = _grad(
        reinforce_loss, logp, logp.detach(), adv, torch.ones(1, 3), importance_weight="ratio"
    )
    torch.testing.assert_close(g_none, g_ratio)
    torch.testing.assert_close(g_none, torch.full((1, 3), -0.7))


def test_reinforce_rejects_unknown_weight():
    logp, old, mask = _ratio_inputs()
    with pytest.raises(ValueError, match="importance_weight"):
        reinforce_loss(logp, old, torch.ones(2), mask, batch_for(mask), importance_weight="clip")


# --------------------------------------------------------------------------- REC


def test_rec_mode_none_is_vanilla_reinforce_even_off_policy():
    # REC with no mask, no weight, no regulariser -> gradient −A·∇logp whatever ρ is
    logp, old, mask = _ratio_inputs()
    adv = torch.tensor([[1.0, -1.0, 2.0, 0.5, -3.0], [0.0, 1.0, 1.0, -1.0, 1.0]])
    _, grad, diag = _grad(rec_loss, logp, old, adv, mask)
    torch.testing.assert_close(grad, -adv)
    assert diag["clip_fraction"].sum() == 0


@pytest.mark.parametrize("adv", [1.0, -1.0, 0.0])
def test_rec_one_side_keeps_every_token_at_ratio_one(adv):
    # REC's one-side mask keeps every token at ρ = 1
    logp = torch.tensor([[-0.4, -1.2, -3.0]], requires_grad=True)
    _, grad, diag = _grad(
        rec_loss, logp, logp.detach(), torch.tensor([adv]), torch.ones(1, 3), clip_mode="one_side"
    )
    assert diag["clip_fraction"].sum() == 0
    torch.testing.assert_close(grad, torch.full((1, 3), -adv))


def test_rec_masks_by_hand():
    # ratios [0.3, 0.5, 1.0, 1.5, 3.5]; ε = 0.2 -> [0.8, 1.2]; ring ε' = (0.6, 2.0) -> ρ ≤ 0.4 / ρ ≥ 3.0
    logp, old, mask = _ratio_inputs()
    adv = torch.tensor([1.0, -1.0])
    expected_keep = {
        "two_side": [[0, 0, 1, 0, 0], [0, 0, 1, 0, 0]],
        "one_side": [[1, 1, 1, 0, 0], [0, 0, 1, 1, 1]],  # A>0: ρ ≤ 1.2; A<0: ρ ≥ 0.8
        "ring": [[1, 0, 1, 0, 0], [0, 0, 1, 0, 1]],  # two-side, plus (A≥0, ρ≤0.4) and (A≤0, ρ≥3)
    }
    for mode, keep in expected_keep.items():
        _, grad, diag = _grad(rec_loss, logp, old, adv, mask, clip_mode=mode)
        keep = torch.tensor(keep, dtype=torch.float32)
        torch.testing.assert_close(diag["clip_fraction"], 1 - keep, msg=mode)
        # kept tokens: gradient −A (no importance weight); masked tokens: exactly 0
        torch.testing.assert_close(grad, -adv.unsqueeze(1) * keep, msg=mode)


def test_rec_one_side_sequence_uses_the_geometric_sequence_ratio():
    # row 0: log ρ = [log 2, log 0.5] -> sequence ratio 1, kept although token 0 has ρ = 2
    # row 1: log ρ = [log 2, log 2]   -> sequence ratio 2 > 1.2, dropped for A > 0
    logp = torch.log(torch.tensor([[2.0, 0.5], [2.0, 2.0]])).requires_grad_(True)
    _, grad, diag = _grad(
        rec_loss, logp, torch.zeros(2, 2), torch.ones(2), torch.ones(2, 2), clip_mode="one_side_sequence"
    )
    torch.testing.assert_close(diag["clip_fraction"], torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    torch.testing.assert_close(grad, torch.tensor([[-1.0, -1.0], [0.0, 0.0]]))


def test_rec_weights_by_hand():
    logp, old, mask = _ratio_inputs(ratios=[0.5, 2.0], rows=1)
    _, grad, _ = _grad(rec_loss, logp, old, torch.tensor([2.0]), mask, weight="importance")
    torch.testing.assert_close(grad, torch.tensor([[-1.0, -4.0]]))  # −A·ρ
    _, grad, _ = _grad(rec_loss, logp, old, torch.tensor([2.0]), mask, weight="sequence_importance")
    torch.testing.assert_close(grad, torch.tensor([[-2.0, -2.0]]))  # sequence ratio exp(mean log ρ) = 1
    _, grad, _ = _grad(rec_loss, logp, old, torch.tensor([2.0]), mask, weight="advantage", temp=2.0)
    torch.testing.assert_close(grad, torch.full((1, 2), -2.0 * math.e))  # −A·exp(A/temp)


def test_rec_forward_kl_regulariser_adds_minus_c_logp():
    logp = torch.tensor([[-1.0, -2.0]], requires_grad=True)
    loss, grad, _ = _grad(
        rec_loss,
        logp,
        logp.detach(),
        torch.tensor([1.0]),
        torch.ones(1, 2),
        regularizer="forward_kl",
        regularizer_coef=0.3,
    )
    torch.testing.assert_close(loss, torch.tensor([[1.3, 2.6]]))  # −(1 + 0.3)·logp
    torch.testing.assert_close(grad, torch.full((1, 2), -1.3))


def test_rec_rejects_unknown_modes():
    logp, old, mask = _ratio_inputs()
    for params in ({"clip_mode": "both"}, {"weight": "is"}, {"regularizer": "k3"}):
        with pytest.raises(ValueError):
            rec_loss(logp, old, torch.ones(2), mask, batch_for(mask), **params)


# ------------------------------------------------------------------------------ OPMD


def test_opmd_k2_has_zero_gradient_at_old_policy():
    # at logp = old_logp OPMD's gradient is REINFORCE's
    logp = torch.tensor([[-0.5, -1.5]], requires_grad=True)
    _, grad, _ = _grad(opmd_loss, logp, logp.detach(), torch.tensor([1.5]), torch.ones(1, 2), tau=0.7)
    torch.testing.assert_close(grad, torch.full((1, 2), -1.5))


def test_opmd_k2_by_hand_away_from_old_policy():
    # logp − old = [0.5, −1.0], A = 1, τ = 0.1: loss = −logp + 0.1·Δ², grad = −1 + 0.2·Δ
    logp = torch.tensor([[-0.5, -2.0]], requires_grad=True)
    old = torch.tensor([[-1.0, -1.0]])
    loss, grad, _ = _grad(opmd_loss, logp, old, torch.tensor([1.0]), torch.ones(1, 2), tau=0.1)
    torch.testing.assert_close(loss, torch.tensor([[0.5 + 0.025, 2.0 + 0.1]]))
    torch.testing.assert_close(grad, torch.tensor([[-0.9, -1.2]]))


def test_opmd_equals_rec_with_k2():
    logp = torch.tensor([[-0.5, -2.0, -0.1]], requires_grad=True)
    old = torch.tensor([[-1.0, -1.0, -0.3]])
    adv = torch.tensor([-0.4])
    a, _ = opmd_loss(logp, old, adv, torch.ones(1, 3), batch_for(torch.ones(1, 3)), tau=0.25)
    b, _ = rec_loss(
        logp, old, adv, torch.ones(1, 3), batch_for(torch.ones(1, 3)), regularizer="k2", regularizer_coef=0.25
    )
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------- AsymRE


def test_asymre_shifts_the_baseline_below_the_mean():
    # rewards [1, 0] in one group: A = r − mean = [0.5, −0.5]; V = mean − 0.1 -> weights [0.6, −0.4]
    logp = torch.tensor([[-1.0], [-2.0]], requires_grad=True)
    loss, grad, _ = _grad(
        asymre_loss, logp, logp.detach(), torch.tensor([0.5, -0.5]), torch.ones(2, 1), delta=0.1
    )
    torch.testing.assert_close(grad, torch.tensor([[-0.6], [0.4]]))
    torch.testing.assert_close(loss, torch.tensor([[0.6], [-0.8]]))


def test_asymre_equals_rec_forward_kl():
    logp = torch.tensor([[-1.0, -0.2], [-2.0, -0.7]], requires_grad=True)
    adv = torch.tensor([0.5, -0.5])
    a, _ = asymre_loss(logp, logp.detach(), adv, torch.ones(2, 2), batch_for(torch.ones(2, 2)), delta=0.2)
    b, _ = rec_loss(
        logp,
        logp.detach(),
        adv,
        torch.ones(2, 2),
        batch_for(torch.ones(2, 2)),
        regularizer="forward_kl",
        regularizer_coef=0.2,
    )
    torch.testing.assert_close(a, b)


def test_asymre_zero_delta_is_reinforce():
    logp = torch.tensor([[-1.0, -0.2]], requires_grad=True)
    a, _ = asymre_loss(
        logp, logp.detach(), torch.tensor([0.3]), torch.ones(1, 2), batch_for(torch.ones(1, 2)), delta=0.0
    )
    b, _ = reinforce_loss(
        logp, logp.detach(), torch.tensor([0.3]), torch.ones(1, 2), batch_for(torch.ones(1, 2))
    )
    torch.testing.assert_close(a, b)


# ------------------------------------------------------------------------- edge cases


@pytest.mark.parametrize("name", ["reinforce", "rec", "opmd", "asymre"])
def test_padding_is_zero_and_does_not_leak(name):
    fn = losses.get(name)
    logp = torch.tensor([[-1.0, -2.0, float("-inf")], [float("nan"), 0.0, 0.0]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])  # a padded token and an empty row
    loss, diag = fn(logp, torch.zeros(2, 3), torch.tensor([1.0, -1.0]), mask, None)
    assert torch.isfinite(loss).all()
    assert (loss[mask == 0] == 0).all()
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.isfinite(grad).all() and (grad[mask == 0] == 0).all()
    for value in diag.values():
        assert (value[mask == 0] == 0).all()


finite = st.floats(-30.0, 30.0, allow_nan=False, width=32)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 3),
    st.integers(1, 4),
    st.data(),
    st.sampled_from(["none", "one_side", "two_side", "ring", "one_side_sequence"]),
    st.sampled_from(["none", "importance", "sequence_importance", "advantage"]),
)
def test_property_rec_finite_and_masked_tokens_get_no_pg_gradient(b, t, data, clip_mode, weight):
    logp = (
        torch.tensor(data.draw(st.lists(finite, min_size=b * t, max_size=b * t)))
        .view(b, t)
        .requires_grad_(True)
    )
    old = torch.tensor(data.draw(st.lists(finite, min_size=b * t, max_size=b * t))).view(b, t)
    adv = torch.tensor(data.draw(st.lists(st.floats(-5, 5, width=32), min_size=b, max_size=b)))
    loss, diag = rec_loss(
        logp, old, adv, torch.ones(b, t), batch_for(torch.ones(b, t)), clip_mode=clip_mode, weight=weight
    )
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert torch.isfinite(loss).all() and torch.isfinite(grad).all()
    assert (grad[diag["clip_fraction"].bool()] == 0).all()
