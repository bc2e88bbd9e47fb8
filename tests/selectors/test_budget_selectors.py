"""Knapsack RL and XRPO rollout allocation under a fixed budget."""

import itertools
import math

import pytest

from grpozoo.registry import selectors
from grpozoo.selectors.budget import (
    greedy_allocate,
    knapsack_allocation,
    knapsack_value,
    student_t_quantile,
    xrpo_priority,
)


# ----------------------------------------------------------------------------- Knapsack RL
def test_knapsack_value_by_hand():
    assert knapsack_value(2, 0.5) == pytest.approx((1 - 0.25 - 0.25) * 0.5 * 0.25)  # 0.0625
    assert knapsack_value(4, 0.2) == pytest.approx(0.5888 * 0.128)  # (1 − .0016 − .4096)·0.2·0.64
    assert knapsack_value(8, 0.0) == knapsack_value(8, 1.0) == 0.0


def test_knapsack_value_is_non_decreasing_in_n():
    for p in [0.01, 0.1, 1 / 3, 0.5, 0.7, 0.99]:
        values = [knapsack_value(n, p) for n in range(1, 100)]
        assert all(b >= a for a, b in itertools.pairwise(values)), p


def test_knapsack_allocation_by_hand():
    # p = 0.2: marginal gains .02048, .01393, .01065, .00842 (n = 2..5) all beat p = 0.8's first, .00512
    assert knapsack_allocation([0.2, 0.8], budget=8, n_min=2) == [6, 2]
    assert knapsack_allocation([0.5, 0.5], budget=7, n_min=2) == [4, 3]  # equal prompts share evenly
    assert knapsack_allocation([0.0, 1.0, 0.5], budget=9, n_min=2) == [2, 2, 5]  # p ∈ {0, 1}: no gain
    assert knapsack_allocation([0.0, 1.0], budget=7, n_min=2) == [4, 3]  # all at zero gain: even


def brute_force_optimum(p: list[float], budget: int, n_min: int, n_max: int) -> float:
    best = -1.0
    for counts in itertools.product(range(n_min, n_max + 1), repeat=len(p)):
        if sum(counts) == budget:
            best = max(best, sum(knapsack_value(n, q) for n, q in zip(counts, p, strict=True)))
    return best


@pytest.mark.parametrize(
    "p, budget, n_min, n_max",
    [
        ([0.2, 0.8], 8, 2, 6),
        ([0.05, 0.3, 0.9], 12, 1, 8),
        ([0.5, 0.5, 0.1, 0.95], 16, 2, 7),
        ([0.01, 0.6, 0.35], 9, 2, 5),
        ([0.7, 0.15, 0.4, 0.02], 20, 3, 9),
    ],
)
def test_knapsack_greedy_equals_the_exhaustive_optimum_and_respects_the_budget(p, budget, n_min, n_max):
    counts = knapsack_allocation(p, budget, n_min, n_max)
    assert sum(counts) == budget and all(n_min <= n <= n_max for n in counts)
    value = sum(knapsack_value(n, q) for n, q in zip(counts, p, strict=True))
    assert value == pytest.approx(brute_force_optimum(p, budget, n_min, n_max), rel=1e-12)


@pytest.mark.parametrize("p", [0.05, 0.1, 0.2, 0.3, 0.45])
@pytest.mark.parametrize("budget", [8, 16, 40])
def test_knapsack_gives_a_harder_prompt_at_least_the_rollouts_of_its_easier_mirror(p, budget):
    hard, easy = knapsack_allocation([p, 1 - p], budget, n_min=2)
    assert hard >= easy


def test_allocation_bounds_are_checked_with_the_fix():
    with pytest.raises(
        ValueError, match="n_min=3 rollouts for each of 4 prompts exceeds the step's budget of 8"
    ):
        knapsack_allocation([0.5] * 4, budget=8, n_min=3)
    with pytest.raises(ValueError, match="raise n_max"):
        knapsack_allocation([0.5] * 4, budget=20, n_min=2, n_max=4)
    with pytest.raises(ValueError, match="n_min must be >= 1"):
        selectors.get("knapsack_rl")(4, n_min=0)


def test_greedy_allocation_respects_n_max():
    counts = greedy_allocate(lambda i, n: 1.0 if i == 0 else 0.0, 3, budget=12, n_min=2, n_max=5)
    assert counts == [5, 4, 3]


def test_knapsack_selector_allocates_from_its_tracked_success_rates(groups_batch):
    selector = selectors.get("knapsack_rl")(4, seed=0, n_min=2)
    rows = selector.next(2)
    assert selector.allocate(rows, 4) == [4, 4]  # unseen: p = 0.5 each
    # latest visit only (memory 0): p = (s + 0.5)/(G + 1)
    selector.update(rows, groups_batch({rows[0]: [0.0, 0.0, 0.0, 1.0], rows[1]: [1.0, 1.0, 1.0, 1.0]}))
    assert selector.tracker.mean()[rows].tolist() == pytest.approx([1.5 / 5, 4.5 / 5])
    counts = selector.allocate(rows, 4)
    assert counts == knapsack_allocation([0.3, 0.9], 8, 2) and counts[0] > counts[1]
    selector.update(rows, groups_batch({rows[0]: [1.0, 1.0]}))  # the older visit is forgotten
    assert selector.tracker.mean()[rows[0]].item() == pytest.approx(2.5 / 3)


# ----------------------------------------------------------------------------- XRPO
@pytest.mark.parametrize(
    "q, df, table",
    [
        (0.975, 1, 12.7062),
        (0.975, 2, 4.3027),
        (0.975, 3, 3.1824),
        (0.975, 4, 2.7764),
        (0.975, 10, 2.2281),
        (0.975, 30, 2.0423),
        (0.95, 5, 2.0150),
        (0.995, 7, 3.4995),
    ],
)
def test_student_t_quantiles_match_the_table(q, df, table):
    assert student_t_quantile(q, df) == pytest.approx(table, abs=1e-4)


def test_xrpo_priority_by_hand():
    # h(4) = t(.975, 3)·0.5/√4, h(5) = t(.975, 4)·0.5/√5, bonus 0.1·√(ln 101 / 4)
    expected = 3.182446 * 0.5 / 2 - 2.776445 * 0.5 / math.sqrt(5) + 0.1 * math.sqrt(math.log(101) / 4)
    assert xrpo_priority(4, 0.5, total=100, significance=0.05, ucb_coef=0.1) == pytest.approx(
        expected, rel=1e-6
    )
    assert expected == pytest.approx(0.282194, abs=1e-6)
    assert xrpo_priority(1, 0.5, total=100) == math.inf  # no spread estimate from one rollout


@pytest.mark.parametrize("std", [0.1, 0.5, 2.0])
@pytest.mark.parametrize("total", [0, 10, 10_000])
def test_xrpo_priority_decreases_in_n_at_fixed_std(std, total):
    values = [xrpo_priority(n, std, total) for n in range(2, 200)]
    assert all(b < a for a, b in itertools.pairwise(values))


def test_xrpo_gives_more_rollouts_to_uncertain_and_less_explored_prompts(groups_batch):
    selector = selectors.get("xrpo")(6, seed=0, n_min=2)
    # row 0: 16 rollouts, spread 0.5; row 1: 16 rollouts, all equal (std 0); rows 2-5 unseen
    selector.update([], groups_batch({0: [1.0, 0.0] * 8, 1: [1.0] * 16}))
    assert selector.allocate([0, 1, 2], group_size=4) == [2, 2, 8]  # the unseen prompt's interval is widest
    counts = selector.allocate([0, 1, 2], group_size=12)
    assert sum(counts) == 36 and counts[2] > counts[0] > counts[1] >= 2


def test_xrpo_allocation_sums_to_the_budget_and_respects_the_bounds(groups_batch):
    selector = selectors.get("xrpo")(8, seed=0, n_min=2, n_max=6)
    selector.update([], groups_batch({0: [1.0, 0.0, 1.0], 3: [0.0, 0.0], 5: [0.2, 0.9, 0.4, 0.4]}))
    for rows, group_size in [([0, 1, 2, 3], 4), ([3, 5, 0], 5), ([7, 6, 5, 4, 3], 3)]:
        counts = selector.allocate(rows, group_size)
        assert sum(counts) == len(rows) * group_size and all(2 <= n <= 6 for n in counts)
