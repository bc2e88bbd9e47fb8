"""Adaptive KL and entropy coefficients."""

import pytest

from grpozoo.algos.controllers import adaptive_entropy_coef, adaptive_kl_coef


def test_adaptive_kl_grows_above_target_shrinks_below_and_is_bounded():
    assert adaptive_kl_coef(0.1, kl=0.02, target=0.01, horizon=10) == pytest.approx(0.1 * (1 + 0.2 / 10))
    assert adaptive_kl_coef(0.1, kl=0.0, target=0.01, horizon=10) == pytest.approx(0.1 * (1 - 0.2 / 10))
    assert adaptive_kl_coef(0.1, kl=0.011, target=0.01, horizon=1) == pytest.approx(0.1 * 1.1)
    assert adaptive_kl_coef(0.1, kl=0.01, target=0.01, horizon=5) == pytest.approx(0.1)


def test_adaptive_entropy_coefficient_follows_the_target_and_never_goes_negative():
    assert adaptive_entropy_coef(0.01, entropy=0.5, target=1.0, rate=0.1) == pytest.approx(0.06)
    assert adaptive_entropy_coef(0.01, entropy=2.0, target=1.0, rate=0.1) == 0.0
