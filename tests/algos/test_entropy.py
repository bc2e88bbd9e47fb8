"""Entropy normalisation: HAPO's entropy score ĥ (part a) and DHPO's batch-standardised entropy."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.entropy import (
    apply_hapo_entropy_norm,
    hapo_entropy_stats,
    hapo_normalized_entropy,
    masked_mean,
    standardized_entropy,
)


def test_hapo_score_by_hand():
    # log H = [-3, -1, 0, 2, 4]: median 0; negatives / 3, positives / 4
    entropies = torch.exp(torch.tensor([[-3.0, -1.0, 0.0, 2.0, 4.0]]))
    torch.testing.assert_close(
        hapo_normalized_entropy(entropies, torch.ones(1, 5)), torch.tensor([[-1.0, -1 / 3, 0.0, 0.5, 1.0]])
    )


def test_hapo_stats_by_hand():
    entropies = torch.exp(torch.tensor([[-3.0, -1.0, 0.0, 2.0, 4.0]]))
    stats = hapo_entropy_stats(entropies, torch.ones(1, 5))
    rms = math.sqrt((9 + 1 + 0 + 4 + 16) / 5)
    torch.testing.assert_close(stats.pivot, torch.tensor(0.0))
    torch.testing.assert_close(stats.rms, torch.tensor(rms))
    torch.testing.assert_close(stats.scale_pos, torch.tensor(rms / 4))
    torch.testing.assert_close(stats.scale_neg, torch.tensor(rms / 3))


def test_hapo_pivot_quantile():
    entropies = torch.exp(torch.tensor([[-3.0, -1.0, 0.0, 2.0, 4.0]]))
    # pivot at the lowest value: every other token is above it, scaled by the largest (4 - -3 = 7)
    h = hapo_normalized_entropy(entropies, torch.ones(1, 5), pivot_quantile=0.0)
    torch.testing.assert_close(h, torch.tensor([[0.0, 2 / 7, 3 / 7, 5 / 7, 1.0]]))


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(0.001, 10.0), min_size=12, max_size=12),
    st.lists(st.integers(0, 4), min_size=3, max_size=3),
)
def test_property_hapo_score_spans_minus_one_to_one(values, lengths):
    entropies = torch.tensor(values).view(3, 4)
    mask = (torch.arange(4) < torch.tensor(lengths).unsqueeze(1)).float()
    h = hapo_normalized_entropy(entropies, mask)
    real = h[mask > 0]
    assert (h[mask == 0] == 0).all() and (h.abs() <= 1).all()
    log_h = torch.log(entropies[mask > 0])
    if real.numel() and log_h.max() - log_h.min() > 1e-3:
        assert real.max() == pytest.approx(1.0) or real.min() == pytest.approx(-1.0)
        if (real > 0).any():
            assert real.max() == pytest.approx(1.0)
        if (real < 0).any():
            assert real.min() == pytest.approx(-1.0)
    # the score keeps the order of the entropies
    order = torch.argsort(entropies[mask > 0], stable=True)
    assert (real[order][1:] >= real[order][:-1]).all()


def test_hapo_padding_does_not_influence_real_tokens():
    mask = torch.tensor([[1.0, 1.0, 1.0, 0.0]])
    a = hapo_normalized_entropy(torch.tensor([[0.2, 1.0, 3.0, 100.0]]), mask)
    b = hapo_normalized_entropy(torch.tensor([[0.2, 1.0, 3.0, 1e-9]]), mask)
    torch.testing.assert_close(a, b)
    assert a[0, 3] == 0


def test_hapo_equal_or_zero_entropies_give_zero():
    assert torch.equal(hapo_normalized_entropy(torch.full((2, 3), 0.4), torch.ones(2, 3)), torch.zeros(2, 3))
    h = hapo_normalized_entropy(torch.zeros(2, 3), torch.ones(2, 3))
    assert torch.isfinite(h).all() and torch.equal(h, torch.zeros(2, 3))
    assert torch.equal(hapo_normalized_entropy(torch.rand(2, 3), torch.zeros(2, 3)), torch.zeros(2, 3))


def test_stats_of_one_batch_applied_to_another_saturate():
    stats = hapo_entropy_stats(torch.exp(torch.tensor([[-1.0, 0.0, 1.0]])), torch.ones(1, 3))
    h = apply_hapo_entropy_norm(torch.exp(torch.tensor([[-5.0, 0.5, 5.0]])), torch.ones(1, 3), stats)
    torch.testing.assert_close(h, torch.tensor([[-1.0, 0.5, 1.0]]))


def test_standardized_entropy_by_hand():
    torch.testing.assert_close(
        standardized_entropy(torch.tensor([[1.0, 3.0]]), torch.ones(1, 2)), torch.tensor([[-1.0, 1.0]])
    )
    z = standardized_entropy(torch.tensor([[1.0, 3.0, 50.0]]), torch.tensor([[1.0, 1.0, 0.0]]))
    torch.testing.assert_close(z, torch.tensor([[-1.0, 1.0, 0.0]]))
    assert torch.equal(standardized_entropy(torch.full((2, 2), 0.3), torch.ones(2, 2)), torch.zeros(2, 2))


def test_masked_mean():
    assert masked_mean(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]])).item() == 2.0
    assert masked_mean(torch.ones(2, 2), torch.zeros(2, 2)).item() == 0.0
