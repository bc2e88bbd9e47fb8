"""KL estimators k1/k2/k3: hand values, sign, and unbiasedness by Monte Carlo."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.kl import kl_k1, kl_k2, kl_k3
from grpozoo.registry import kl_estimators


def test_registered_names():
    assert kl_estimators.get("k1") is kl_k1
    assert kl_estimators.get("k2") is kl_k2
    assert kl_estimators.get("k3") is kl_k3


def test_hand_values():
    logp = torch.tensor([[0.0, math.log(0.5), -1.0]])
    ref = torch.tensor([[math.log(0.5), 0.0, -1.0]])
    # k1 = logp - ref
    torch.testing.assert_close(kl_k1(logp, ref), torch.tensor([[math.log(2), -math.log(2), 0.0]]))
    # k2 = (logp - ref)^2 / 2
    half_sq = 0.5 * math.log(2) ** 2  # 0.240227
    torch.testing.assert_close(kl_k2(logp, ref), torch.tensor([[half_sq, half_sq, 0.0]]))
    # k3 = r - log r - 1 with r = p_ref / p: r = 0.5 -> 0.5 + log 2 - 1; r = 2 -> 2 - log 2 - 1
    expected_k3 = torch.tensor([[math.log(2) - 0.5, 1 - math.log(2), 0.0]])
    torch.testing.assert_close(kl_k3(logp, ref), expected_k3)
    assert kl_k3(logp, ref)[0, 0].item() == pytest.approx(0.193147, abs=1e-6)
    assert kl_k3(logp, ref)[0, 1].item() == pytest.approx(0.306853, abs=1e-6)


def test_k3_is_zero_when_equal():
    logp = torch.tensor([[-0.1, -2.0, -7.5], [0.0, -30.0, -1e-3]])
    assert torch.equal(kl_k3(logp, logp.clone()), torch.zeros(2, 3))
    assert torch.equal(kl_k1(logp, logp.clone()), torch.zeros(2, 3))
    assert torch.equal(kl_k2(logp, logp.clone()), torch.zeros(2, 3))


def test_k3_finite_on_wild_log_probs():
    out = kl_k3(torch.tensor([[0.0, -1000.0]]), torch.tensor([[-1000.0, 0.0]]))
    assert torch.isfinite(out).all()


def test_k3_gradient_by_hand():
    # d k3 / d logp = 1 - exp(ref - logp): at ref - logp = log 2 the gradient is -1
    logp = torch.tensor([0.0], requires_grad=True)
    kl_k3(logp, torch.tensor([math.log(2)])).backward()
    assert logp.grad.item() == pytest.approx(-1.0)


log_probs = st.floats(-15.0, 0.0, allow_nan=False)


@settings(max_examples=100, deadline=None)
@given(log_probs, log_probs)
def test_property_k2_k3_non_negative(a, b):
    logp = torch.tensor([a], dtype=torch.float64)
    ref = torch.tensor([b], dtype=torch.float64)
    assert kl_k3(logp, ref).item() >= 0.0
    assert kl_k2(logp, ref).item() >= 0.0
    # k1 is the only one that can go negative; its sign follows logp - ref
    assert math.copysign(1.0, kl_k1(logp, ref).item()) == math.copysign(1.0, a - b) or a == b


def test_k3_non_negative_on_a_float32_grid():
    logp = torch.linspace(-12.0, 0.0, 241)
    ref = torch.linspace(-12.0, 0.0, 241).flip(0)
    grid_p, grid_q = torch.meshgrid(logp, ref, indexing="ij")
    assert (kl_k3(grid_p, grid_q) >= 0).all()


def test_k3_non_negative_for_tiny_float32_differences():
    d = torch.linspace(-1e-3, 1e-3, 20001)
    assert (kl_k3(torch.zeros_like(d), d) >= 0).all()


def test_k1_and_k3_are_unbiased_estimators_of_kl():
    p = torch.tensor([0.5, 0.3, 0.15, 0.05], dtype=torch.float64)
    q = torch.tensor([0.25, 0.25, 0.25, 0.25], dtype=torch.float64)
    # KL(p || q) = 0.5 ln 2 + 0.3 ln 1.2 + 0.15 ln 0.6 + 0.05 ln 0.2 = 0.244174
    exact = float((p * (p / q).log()).sum())
    assert exact == pytest.approx(0.244174, abs=1e-6)
    generator = torch.Generator().manual_seed(0)
    tokens = torch.multinomial(p, 200_000, replacement=True, generator=generator)
    logp, ref = p.log()[tokens], q.log()[tokens]
    k1 = kl_k1(logp, ref).mean().item()
    k3 = kl_k3(logp, ref).mean().item()
    k2 = kl_k2(logp, ref).mean().item()
    # standard errors of the means are about 0.0015 (k1) and 0.001 (k3) at 200k samples
    assert k1 == pytest.approx(exact, abs=0.01)
    assert k3 == pytest.approx(exact, abs=0.01)
    # k2 is biased: its expectation is 0.5 * E[(log p/q)^2] = 0.209428, measurably off the KL
    assert k2 == pytest.approx(0.209428, abs=0.005)
    assert abs(k2 - exact) > 0.02


def test_abs_estimator_is_the_absolute_log_ratio():
    from grpozoo.algos.kl import kl_abs

    torch.testing.assert_close(kl_abs(torch.tensor([-1.0, 0.5]), torch.tensor([0.0, 0.0])), torch.tensor([1.0, 0.5]))


def test_straight_through_keeps_the_value_and_takes_k2s_gradient():
    from grpozoo.algos.kl import kl_k3, straight_through

    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    ref = torch.tensor([-1.5, -1.0])
    value = straight_through(kl_k3(logp, ref), logp, ref)
    torch.testing.assert_close(value.detach(), kl_k3(logp, ref).detach())
    value.sum().backward()
    torch.testing.assert_close(logp.grad, (logp - ref).detach())  # d/dlogp ½(logp − ref)²


def test_kl_to_go_sums_the_kl_still_to_come():
    from grpozoo.algos.kl import kl_to_go

    kl = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    torch.testing.assert_close(kl_to_go(kl, mask), torch.tensor([[6.0, 5.0, 3.0], [9.0, 5.0, 0.0]]))
