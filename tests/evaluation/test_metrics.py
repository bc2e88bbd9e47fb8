"""pass@k, pass^k, maj@k, calibration AUC, percentiles and mean/stderr against hand-computed values."""

import math
from itertools import combinations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from grpozoo.evaluation.metrics import (
    calibration_auc,
    calibration_auc_within_groups,
    histogram,
    maj_at_k,
    mean_and_stderr,
    pass_at_k,
    pass_hat_k,
    percentile,
    powers_of_two_up_to,
)


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


# ---------------------------------------------------------------------------------------------- pass^k


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (4, 2, 1, 0.5),  # pass^1 = c / n
        (4, 2, 2, 1 / 6),  # C(2,2)/C(4,2) = 1/6
        (5, 3, 2, 0.3),  # C(3,2)/C(5,2) = 3/10
        (10, 5, 3, 1 / 12),  # C(5,3)/C(10,3) = 10/120
        (4, 3, 4, 0.0),  # one wrong sample spoils every draw of all 4
        (4, 4, 4, 1.0),
        (4, 0, 1, 0.0),
        (4, 1, 2, 0.0),  # fewer right samples than k
    ],
)
def test_pass_hat_k_by_hand(n, c, k, expected):
    assert pass_hat_k(n, c, k) == pytest.approx(expected)


def test_pass_hat_k_needs_k_samples():
    with pytest.raises(ValueError, match=r"pass\^5 needs at least 5 samples per prompt, got 4"):
        pass_hat_k(4, 4, 5)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 7).flatmap(lambda n: st.tuples(st.just(n), st.integers(0, n), st.integers(1, n))))
def test_property_pass_hat_k_equals_enumerated_draws(nck):
    n, c, k = nck
    samples = [True] * c + [False] * (n - c)
    draws = list(combinations(range(n), k))
    assert pass_hat_k(n, c, k) == pytest.approx(sum(all(samples[i] for i in d) for d in draws) / len(draws))


# ---------------------------------------------------------------------------------------------- maj@k


@pytest.mark.parametrize(
    ("answers", "correct", "k", "expected"),
    [
        # three right "7" and one wrong "2"
        (["7", "7", "7", "2"], [1, 1, 1, 0], 1, 0.75),
        # 6 pairs: three {7,7} win (1 each), three {7,2} ties (1/2 each): 4.5 / 6
        (["7", "7", "7", "2"], [1, 1, 1, 0], 2, 0.75),
        (["7", "7", "7", "2"], [1, 1, 1, 0], 3, 1.0),  # every triple holds two 7s
        (["7", "7", "7", "2"], [1, 1, 1, 0], 4, 1.0),
        # a 2–2 tie between a right and a wrong answer: half credit
        (["5", "5", "3", "3"], [1, 1, 0, 0], 4, 0.5),
        # right "1" once, wrong "2" once, wrong "3" twice
        (["1", "2", "3", "3"], [1, 0, 0, 0], 1, 0.25),
        # pairs: {1,2} tie 1/2, two {1,3} ties 1/2 each, the rest 0: 1.5 / 6
        (["1", "2", "3", "3"], [1, 0, 0, 0], 2, 0.25),
        # triples: {1,2,3a}, {1,2,3b} three-way ties (1/3 each), {1,3,3} and {2,3,3} lost: (2/3) / 4
        (["1", "2", "3", "3"], [1, 0, 0, 0], 3, 1 / 6),
        (["1", "2", "3", "3"], [1, 0, 0, 0], 4, 0.0),  # "3" has the most votes
        # no answer casts no vote: pairs {4,-} twice win, {4,9} tie, the rest 0: 2.5 / 6
        (["4", None, None, "9"], [1, 0, 0, 0], 2, 5 / 12),
        (["4", None, None, "9"], [1, 0, 0, 0], 4, 0.5),
        ([None, None], [0, 0], 2, 0.0),  # nobody votes
        (["x"], [1], 1, 1.0),
    ],
)
def test_maj_at_k_by_hand(answers, correct, k, expected):
    assert maj_at_k(answers, correct, k) == pytest.approx(expected)


def test_maj_at_k_does_not_depend_on_sample_order():
    answers, correct = ["1", "2", "3", "3", "1", None], [1, 0, 0, 0, 1, 0]
    expected = maj_at_k(answers, correct, 3)
    assert maj_at_k(answers[::-1], correct[::-1], 3) == pytest.approx(expected)


def test_maj_at_k_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match="maj@k: 2 answers but 1 verdicts"):
        maj_at_k(["1", "2"], [1], 1)
    with pytest.raises(ValueError, match="maj@3 needs at least 3 samples per prompt, got 2"):
        maj_at_k(["1", "2"], [1, 0], 3)


def brute_force_maj(answers, correct, k):
    """Every k-subset; the most frequent answer wins, ties share the credit equally."""
    total = 0.0
    draws = list(combinations(range(len(answers)), k))
    for draw in draws:
        votes = {}
        for i in draw:
            if answers[i] is not None:
                votes[answers[i]] = votes.get(answers[i], 0) + 1
        if not votes:
            continue
        top = max(votes.values())
        winners = [a for a, v in votes.items() if v == top]
        for a in winners:
            members = [i for i in range(len(answers)) if answers[i] == a]
            total += sum(correct[i] for i in members) / len(members) / len(winners)
    return total / len(draws)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.sampled_from(["a", "b", "c", "d", None]), min_size=1, max_size=7).flatmap(
        lambda answers: st.tuples(st.just(answers), st.integers(1, len(answers)))
    )
)
def test_property_maj_at_k_equals_enumerated_votes(case):
    answers, k = case
    correct = [a == "a" for a in answers]  # a consistent verifier: "a" is the right answer
    assert maj_at_k(answers, correct, k) == pytest.approx(brute_force_maj(answers, correct, k))


# ---------------------------------------------------------------------------------------------- calibration


@pytest.mark.parametrize(
    ("confidences", "correct", "expected"),
    [
        ([0.9, 0.8, 0.3, 0.1], [1, 1, 0, 0], 1.0),  # every right sample above every wrong one
        ([0.1, 0.3, 0.8, 0.9], [1, 1, 0, 0], 0.0),  # the reverse
        # pairs (right, wrong): (.9,.6) win, (.9,.2) win, (.4,.6) loss, (.4,.2) win: 3/4
        ([0.9, 0.4, 0.6, 0.2], [1, 1, 0, 0], 0.75),
        # (.7,.5) win, (.7,.2) win, (.5,.5) tie = 1/2, (.5,.2) win: 3.5/4
        ([0.7, 0.5, 0.5, 0.2], [1, 1, 0, 0], 0.875),
        ([0.5, 0.5], [1, 0], 0.5),  # a single tied pair
        ([-2.0, -2.0, -2.0], [1, 0, 1], 0.5),  # all tied: chance
    ],
)
def test_calibration_auc_by_hand(confidences, correct, expected):
    assert calibration_auc(confidences, correct) == pytest.approx(expected)


@pytest.mark.parametrize("correct", [[1, 1, 1], [0, 0, 0], []])
def test_calibration_auc_is_nan_without_both_classes(correct):
    # documented: no (right, wrong) pair to compare
    assert math.isnan(calibration_auc([0.1, 0.5, 0.9][: len(correct)], correct))


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([-1.0, -0.5, -0.25, 0.0]), st.booleans()), min_size=2, max_size=12))
def test_property_calibration_auc_equals_pairwise_count(pairs):
    confidences = [c for c, _ in pairs]
    correct = [ok for _, ok in pairs]
    right = [c for c, ok in pairs if ok]
    wrong = [c for c, ok in pairs if not ok]
    if not right or not wrong:
        assert math.isnan(calibration_auc(confidences, correct))
        return
    wins = sum((r > w) + 0.5 * (r == w) for r in right for w in wrong)
    assert calibration_auc(confidences, correct) == pytest.approx(wins / (len(right) * len(wrong)))


def test_calibration_within_prompts_ignores_prompt_difficulty():
    # prompt 0: both right and confident; prompt 1: both wrong and unsure; prompt 2: the right sample
    # is less confident than the wrong one. Pooled, confidence looks informative (8 of 9 pairs won);
    # within prompts the only comparable pair is lost.
    confidences = [0.9, 0.9, 0.1, 0.1, 0.4, 0.6]
    correct = [1, 1, 0, 0, 1, 0]
    groups = [0, 0, 1, 1, 2, 2]
    assert calibration_auc(confidences, correct) == pytest.approx(8 / 9)
    assert calibration_auc_within_groups(confidences, correct, groups) == pytest.approx(0.0)
    # two mixed prompts, 1 of 1 and 1 of 2 pairs won: pooled over pairs, 2 / 3
    assert calibration_auc_within_groups([0.5, 0.1, 0.3, 0.2, 0.9], [1, 0, 1, 0, 0], [0, 0, 1, 1, 1]) == (
        pytest.approx(2 / 3)
    )
    assert math.isnan(calibration_auc_within_groups([0.1, 0.2], [1, 0], [0, 1]))


# ---------------------------------------------------------------------------------------------- lengths


def test_percentile_and_histogram_by_hand():
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)
    assert percentile([1, 2, 3, 4], 25) == pytest.approx(1.75)  # 1 + 0.75 · (2 − 1)
    assert percentile([1, 2, 3, 4], 0) == 1 and percentile([1, 2, 3, 4], 100) == 4
    assert math.isnan(percentile([], 50))
    assert histogram([0, 1, 2, 8], bins=4, upper=8) == {"edges": [0, 2, 4, 6, 8], "counts": [2, 1, 0, 1]}


def test_powers_of_two_up_to_include_n():
    assert powers_of_two_up_to(1) == [1]
    assert powers_of_two_up_to(4) == [1, 2, 4]
    assert powers_of_two_up_to(6) == [1, 2, 4, 6]
