"""Loss aggregations: hand values, and invariance to how a batch is split into micro-batches."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.algos.aggregation import (
    BatchTotals,
    constant_normalizer,
    per_prompt_mean,
    sequence_mean,
    sequence_mean_token_sum,
    token_mean,
    token_sum,
)
from grpozoo.registry import aggregations

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
MASK = torch.tensor([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
GROUPS = torch.tensor([0, 1])
TOTALS = BatchTotals.of(MASK, max_completion_tokens=5, group_ids=GROUPS)

AGGREGATIONS = [token_mean, token_sum, sequence_mean, sequence_mean_token_sum, constant_normalizer, per_prompt_mean]


def test_batch_totals_of_mask():
    assert TOTALS == BatchTotals(num_tokens=3, num_sequences=2, max_completion_tokens=5, group_tokens={0: 2, 1: 1})
    assert TOTALS.num_groups == 2


def test_registered_names():
    for fn in AGGREGATIONS:
        assert aggregations.get(fn.__name__) is fn


@pytest.mark.parametrize(
    ("fn", "expected"),
    [
        (token_mean, 7 / 3),  # masked tokens 1, 2, 4
        (token_sum, 7.0),
        (sequence_mean, (1.5 + 4) / 2),  # row means 1.5 and 4
        (sequence_mean_token_sum, 7 / 2),  # row sums 3 and 4
        (constant_normalizer, 7 / 10),  # Dr.GRPO: token sum over B * max_tokens = 2 * 5
        (per_prompt_mean, (1.5 + 4) / 2),  # one row per group: the group token-means
    ],
)
def test_values_by_hand(fn, expected):
    assert fn(LOSS, MASK, GROUPS, TOTALS).item() == pytest.approx(expected)


def test_per_prompt_mean_weighs_every_prompt_equally():
    # group 0 = rows 0, 1 (tokens 1, 2, 4: mean 7/3); group 1 = row 2 (tokens 10: mean 10)
    loss = torch.tensor([[1.0, 2.0], [4.0, 0.0], [10.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    groups = torch.tensor([0, 0, 1])
    totals = BatchTotals.of(mask, 2, groups)
    assert per_prompt_mean(loss, mask, groups, totals).item() == pytest.approx((7 / 3 + 10) / 2)


def test_dr_grpo_constant_normalizer_is_sequence_mean_token_sum_over_the_budget():
    assert constant_normalizer(LOSS, MASK, GROUPS, TOTALS).item() == pytest.approx(
        sequence_mean_token_sum(LOSS, MASK, GROUPS, TOTALS).item() / TOTALS.max_completion_tokens
    )


def test_masked_values_never_leak_even_if_huge():
    loss = LOSS.clone()
    loss[MASK == 0] = 1e6
    for fn in AGGREGATIONS:
        assert fn(loss, MASK, GROUPS, TOTALS).item() == pytest.approx(fn(LOSS, MASK, GROUPS, TOTALS).item())


def test_fully_masked_row_counts_as_a_sequence_of_zero_loss():
    mask = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    totals = BatchTotals.of(mask, 5, GROUPS)
    assert sequence_mean(LOSS, mask, GROUPS, totals).item() == pytest.approx(1.5 / 2)
    assert token_mean(LOSS, mask, GROUPS, totals).item() == pytest.approx(1.5)


def test_empty_mask_gives_zero_not_nan():
    mask = torch.zeros(2, 3)
    totals = BatchTotals.of(mask, 5, GROUPS)
    for fn in AGGREGATIONS:
        assert fn(LOSS, mask, GROUPS, totals).item() == 0.0


def test_gradient_of_token_mean_is_mask_over_token_count():
    loss = LOSS.clone().requires_grad_(True)
    token_mean(loss, MASK, GROUPS, TOTALS).backward()
    torch.testing.assert_close(loss.grad, MASK / 3)


def test_constant_normalizer_weight_does_not_depend_on_length():
    loss = LOSS.clone().requires_grad_(True)
    constant_normalizer(loss, MASK, GROUPS, TOTALS).backward()
    torch.testing.assert_close(loss.grad, MASK / 10)


@st.composite
def batches_and_splits(draw):
    b = draw(st.integers(1, 6))
    t = draw(st.integers(1, 5))
    loss = torch.tensor(draw(st.lists(st.floats(-5, 5, width=32), min_size=b * t, max_size=b * t))).view(b, t)
    mask = torch.tensor(draw(st.lists(st.sampled_from([0.0, 1.0]), min_size=b * t, max_size=b * t))).view(b, t)
    groups = torch.tensor(draw(st.lists(st.integers(0, 2), min_size=b, max_size=b)))
    order = draw(st.permutations(range(b)))
    cuts = sorted(draw(st.sets(st.integers(1, b - 1), max_size=b - 1))) if b > 1 else []
    bounds = [0, *cuts, b]
    chunks = [list(order[lo:hi]) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True)]
    return loss, mask, groups, chunks


@settings(max_examples=80, deadline=None)
@given(batches_and_splits(), st.sampled_from(AGGREGATIONS), st.integers(1, 8))
def test_property_sum_over_micro_batches_equals_full_batch(data, fn, max_tokens):
    loss, mask, groups, chunks = data
    totals = BatchTotals.of(mask, max_tokens, groups)
    full = fn(loss, mask, groups, totals)
    parts = sum(fn(loss[rows], mask[rows], groups[rows], totals) for rows in chunks)
    torch.testing.assert_close(parts, full, atol=1e-3, rtol=1e-5)
