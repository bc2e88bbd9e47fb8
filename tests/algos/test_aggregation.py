"""Loss aggregations: hand values, and invariance to how a batch is split into micro-batches."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.aggregation import BatchTotals, constant_normalizer, sequence_mean, token_mean
from grpozoo.registry import aggregations

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
TOTALS = BatchTotals.of(MASK, max_completion_tokens=5)

AGGREGATIONS = [token_mean, sequence_mean, constant_normalizer]


def test_batch_totals_of_mask():
    assert TOTALS == BatchTotals(num_tokens=3, num_sequences=2, max_completion_tokens=5)


def test_registered_names():
    assert aggregations.get("token_mean") is token_mean
    assert aggregations.get("sequence_mean") is sequence_mean
    assert aggregations.get("constant_normalizer") is constant_normalizer


def test_token_mean_by_hand():
    # masked tokens 1, 2, 4 -> 7 / 3
    assert token_mean(LOSS, MASK, TOTALS).item() == pytest.approx(7 / 3)


def test_sequence_mean_by_hand():
    # row means (1 + 2) / 2 = 1.5 and 4 / 1 = 4 -> (1.5 + 4) / 2 = 2.75
    assert sequence_mean(LOSS, MASK, TOTALS).item() == pytest.approx(2.75)


def test_constant_normalizer_by_hand_is_dr_grpo():
    # token sum 7 over B * max_tokens = 2 * 5 = 10
    assert constant_normalizer(LOSS, MASK, TOTALS).item() == pytest.approx(0.7)


def test_masked_values_never_leak_even_if_huge():
    loss = LOSS.clone()
    loss[MASK == 0] = 1e6
    for fn in AGGREGATIONS:
        assert fn(loss, MASK, TOTALS).item() == pytest.approx(fn(LOSS, MASK, TOTALS).item())


def test_fully_masked_row_counts_as_a_sequence_of_zero_loss():
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    totals = BatchTotals.of(mask, 5)
    assert sequence_mean(LOSS, mask, totals).item() == pytest.approx(1.5 / 2)
    assert token_mean(LOSS, mask, totals).item() == pytest.approx(1.5)


def test_empty_mask_gives_zero_not_nan():
    mask = torch.zeros(2, 3)
    totals = BatchTotals.of(mask, 5)
    for fn in AGGREGATIONS:
        assert fn(LOSS, mask, totals).item() == 0.0


def test_gradient_of_token_mean_is_mask_over_token_count():
    loss = LOSS.clone().requires_grad_(True)
    token_mean(loss, MASK, TOTALS).backward()
    torch.testing.assert_close(loss.grad, MASK / 3)


def test_constant_normalizer_weight_does_not_depend_on_length():
    loss = LOSS.clone().requires_grad_(True)
    constant_normalizer(loss, MASK, TOTALS).backward()
    torch.testing.assert_close(loss.grad, MASK / 10)


@st.composite
def batches_and_splits(draw):
    b = draw(st.integers(1, 6))
    t = draw(st.integers(1, 5))
    loss = torch.tensor(draw(st.lists(st.floats(-5, 5, width=32), min_size=b * t, max_size=b * t))).view(b, t)
    mask = torch.tensor(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=b * t, max_size=b * t))).view(b, t)
    order = draw(st.permutations(range(b)))
    cuts = sorted(draw(st.sets(st.integers(1, b - 1), max_size=b - 1))) if b > 1 else []
    bounds = [0, *cuts, b]
    chunks = [list(order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return loss, mask, chunks


@settings(max_examples=80, deadline=None)
@given(batches_and_splits(), st.sampled_from(AGGREGATIONS), st.integers(1, 8))
def test_property_sum_over_micro_batches_equals_full_batch(data, fn, max_tokens):
    loss, mask, chunks = data
    totals = BatchTotals.of(mask, max_tokens)
    full = fn(loss, mask, totals)
    parts = sum(fn(loss[rows], mask[rows], totals) for rows in chunks)
    torch.testing.assert_close(parts, full, atol=1e-4, rtol=1e-5)


@settings(max_examples=40, deadline=None)
@given(batches_and_splits(), st.integers(1, 8))
def test_property_constant_normalizer_is_token_sum_over_b_times_max(data, max_tokens):
    loss, mask, _ = data
    totals = BatchTotals.of(mask, max_tokens)
    expected = (loss * mask).sum() / (loss.shape[0] * max_tokens)
    torch.testing.assert_close(constant_normalizer(loss, mask, totals), expected)
