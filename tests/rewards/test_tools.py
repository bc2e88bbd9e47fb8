"""OTC tool-call efficiency."""

import math

import pytest

from grpozoo.registry import rewards
from grpozoo.rewards.tools import count_tool_calls, otc_factor, otc_reward


def _calls(m):
    return "<tool_call>search</tool_call>" * m + " answer"


def _otc(calls, scores, groups=None, **params):
    size = len(calls)
    return otc_reward(
        [_calls(m) for m in calls], [""] * size, task_score=scores, group_id=groups or [0] * size, **params
    )


def test_count_tool_calls():
    assert count_tool_calls(_calls(3)) == 3
    assert count_tool_calls("<tool>a</tool><tool>b</tool>", pattern=r"<tool>") == 2
    assert count_tool_calls("none") == 0


def test_factor_by_hand():
    assert otc_factor(0, 0) == 1.0  # m = n = 0
    assert otc_factor(2, 2) == 1.0
    assert otc_factor(3, 2) == pytest.approx(math.cos(math.pi / 2 / 6))
    assert otc_factor(1, 2) == pytest.approx(math.cos(math.pi / 2 / 4))
    assert otc_factor(0, 2) == pytest.approx(0.5)  # cos(π/3)
    with pytest.raises(ValueError, match="c=0"):
        otc_factor(1, 1, c=0)


def test_incorrect_answers_get_zero_whatever_their_calls_a41():
    assert _otc([0, 1, 5, 9], [0, 0, 0, 0]) == [0.0] * 4
    assert _otc([1, 5], [1, 0])[1] == 0.0


def test_optimal_number_of_calls_gets_the_max_a41():
    # the fewest calls among right answers is 2: that rollout gets the full reward
    out = _otc([2, 3, 5, 1], [1, 1, 1, 0])
    assert out[0] == 1.0 and max(out) == 1.0


def test_reward_is_strictly_decreasing_in_the_distance_a41():
    n = 3
    above = [otc_factor(n + d, n) for d in range(6)]
    below = [otc_factor(n - d, n) for d in range(4)]
    assert all(a > b for a, b in zip(above, above[1:], strict=False))
    assert all(a > b for a, b in zip(below, below[1:], strict=False))
    out = _otc([3, 4, 6, 9], [1, 1, 1, 1])
    assert out == sorted(out, reverse=True) and len(set(out)) == 4


def test_optimum_from_a_dataset_column():
    # the column says 1 call is enough though the group's best right answer used 2
    out = _otc([2, 1], [1, 0], optimal_tool_calls=[1, 1])
    assert out == pytest.approx([math.cos(math.pi / 2 / 4), 0.0])


def test_optimum_is_per_group():
    out = _otc([1, 2, 4, 4], [1, 1, 1, 1], groups=[0, 0, 1, 1])
    assert out[0] == 1.0 and out[1] < 1.0 and out[2] == out[3] == 1.0


def test_registered():
    assert rewards.get("otc") is otc_reward
