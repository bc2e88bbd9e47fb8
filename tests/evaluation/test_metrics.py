"""pass@k and mean/stderr against hand-computed values."""

import math
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.evaluation.metrics import mean_and_stderr, pass_at_k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 1, 1, 0.25),  # 1 - C(3,1)/C(4,1) = 1 - 3/4
        (4, 1, 2, 0.5),  # 1 - C(3,2)/C(4,2) = 1 - 3/6
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (10, 3, 4, 1 - 35 / 210),  # 1 - C(7,4)/C(10,4) = 0.8333...
        (4, 0, 1, 0.0),
        (4, 0, 4, 0.0),
        (4, 3, 2, 1.0),  # n - c = 1 < k = 2: every draw of 2 holds a right one
        (4, 4, 1, 1.0),
        (4, 4, 4, 1.0),
        (4, 2, 4, 1.0),
        (1, 1, 1, 1.0),
        (1, 0, 1, 0.0),
    ],
)
def test_pass_at_k_by_hand(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_pass_at_1_is_accuracy():
    assert pass_at_k(8, 3, 1) == pytest.approx(3 / 8)


def test_k_greater_than_n_raises():
    with pytest.raises(ValueError, match="pass@5 needs at least 5 samples per prompt, got 4"):
        pass_at_k(4, 1, 5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_property_pass_at_k_equals_enumerated_draws(nck):
    # the fraction of k-subsets of n samples (c right) that hold at least one right sample
    n, c, k = nck
    samples = [True] * c + [False] * (n - c)
    draws = list(combinations(range(n), k))
    expected = sum(any(samples[i] for i in draw) for draw in draws) / len(draws)
    assert pass_at_k(n, c, k) == pytest.approx(expected)


def test_mean_and_stderr_by_hand():
    # mean 2.5; sample variance (2.25 + 0.25 + 0.25 + 2.25) / 3 = 5/3; stderr sqrt(5/3 / 4)
    mean, stderr = mean_and_stderr([1.0, 2.0, 3.0, 4.0])
    assert mean == pytest.approx(2.5)
    assert stderr == pytest.approx(math.sqrt(5 / 12))
    assert stderr == pytest.approx(0.645497, abs=1e-6)


def test_mean_and_stderr_binary():
    # [1, 0, 0, 0]: mean 0.25, sample variance (0.5625 + 3 * 0.0625) / 3 = 0.25, stderr sqrt(0.25 / 4)
    assert mean_and_stderr([1, 0, 0, 0]) == pytest.approx((0.25, 0.25))


def test_mean_and_stderr_edge_cases():
    assert mean_and_stderr([3.5]) == (3.5, 0.0)
    assert mean_and_stderr([2.0, 2.0, 2.0]) == (2.0, 0.0)
    mean, stderr = mean_and_stderr([])
    assert math.isnan(mean) and math.isnan(stderr)
