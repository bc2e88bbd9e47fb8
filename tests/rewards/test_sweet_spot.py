"""SSL's tiered sweet-spot reward (Wu et al. 2026, arXiv:2601.22491)."""

import itertools

import pytest

from grpozoo.rewards.sweet_spot import (
    check_tiers,
    distance_quality,
    parse_number,
    ssl_reward,
    sweet_spot_tier,
)

TIERS, THRESHOLDS = (0.0, 0.25, 0.5, 1.0), (0.5, 0.9, 1.0)


def ssl(answers, gold="100", correct=None, **params):
    size = len(answers)
    scores = correct if correct is not None else [float(a == gold) for a in answers]
    return ssl_reward(
        ["…"] * size, ["q"] * size, task_score=scores, answer=[gold] * size, extracted_answer=answers, **params
    )


def test_ssl_tiers_are_monotone_in_quality_and_keep_the_order_of_any_two_outcomes():
    qualities = [0.0, 0.1, 0.49, 0.5, 0.7, 0.9, 0.95, 0.999, 1.0]
    tiers = [sweet_spot_tier(q, THRESHOLDS, TIERS) for q in qualities]
    assert tiers == [0.0, 0.0, 0.0, 0.25, 0.25, 0.5, 0.5, 0.5, 1.0]
    for (qa, ta), (qb, tb) in itertools.combinations(zip(qualities, tiers, strict=True), 2):
        assert (qa <= qb) <= (ta <= tb)  # a better outcome never gets a lower tier


def test_ssl_the_best_solution_gets_the_top_tier_and_closer_answers_earn_more():
    # exact, 1% off, 10% off, 50% off, no answer
    assert ssl(["100", "101", "110", "150", None]) == [1.0, 0.5, 0.25, 0.0, 0.0]
    # distance to the target orders the rewards (ties allowed within a tier)
    rewards = ssl(["100", "99", "97", "80", "10"])
    assert rewards == sorted(rewards, reverse=True) and rewards[0] == 1.0


def test_ssl_the_top_tier_is_the_verifiers_alone():
    # the task's verifier rejects "100.0000000001" (say, it wants an integer): it stays below the top
    assert ssl(["100.0000000001"], correct=[0.0]) == [0.5]
    # a correct answer in another notation ("1e2") reaches the top tier by the verifier's word
    assert ssl(["1e2"], correct=[1.0]) == [1.0]


def test_ssl_does_not_pay_a_hedging_or_empty_answer():
    # the adversary writes the gold number in its reasoning, then a far-off final answer: the final
    # answer is what is judged; an empty answer tag pays nothing
    completions = ["maybe 100? final: <answer>5000</answer>", "<answer></answer>", "<answer>  </answer>"]
    out = ssl_reward(
        completions, ["q"] * 3, task_score=[0.0] * 3, answer=["100"] * 3, extracted_answer=["5000", None, ""]
    )
    assert out == [0.0, 0.0, 0.0]


def test_ssl_milestones_from_the_task_score():
    out = ssl(["a", "b", "c", "d"], correct=[0.0, 0.6, 0.95, 1.0], quality="task_score")
    assert out == [0.0, 0.25, 0.5, 1.0]


def test_ssl_refuses_tiers_that_would_reorder_outcomes():
    with pytest.raises(ValueError, match="must not decrease"):
        check_tiers("ssl", (0.5, 0.9, 1.0), (0.0, 0.5, 0.25, 1.0))
    with pytest.raises(ValueError, match="thresholds"):
        check_tiers("ssl", (0.5, 1.0), (0.0, 0.5, 0.25, 1.0))


def test_numbers_and_distance():
    assert parse_number("1,234") == 1234.0 and parse_number("3/4") == 0.75 and parse_number("x") is None
    assert distance_quality(5.0, 5.0) == 1.0 > distance_quality(5.5, 5.0) > distance_quality(7.0, 5.0)
