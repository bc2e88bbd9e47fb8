"""Answer extraction styles and math-verify equivalence."""

import pytest

from grpozoo.rewards.extraction import extract_answer, last_boxed
from grpozoo.rewards.math import math_equal


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is 42.", "42"),
        ("first 3, then 4", "4"),
        ("it drops to -17 degrees", "-17"),
        ("a total of 1,234,567 people", "1234567"),
        ("the pair 1,2", "2"),  # a comma before fewer than three digits separates numbers
        ("pi is about 3.14159", "3.14159"),
        ("a loss of -2.5.", "-2.5"),
        ("half is .5", ".5"),
        ("minus half is -.5", "-.5"),
        ("6 - 2 = 4", "4"),
        ("no digits here", None),
        ("", None),
    ],
)
def test_last_number(text, expected):
    assert extract_answer(text, "last_number") == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("so \\boxed{7}", "7"),
        ("\\boxed{1} then \\boxed{2}", "2"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{ x^{2} + {y} }.", "x^{2} + {y}"),
        ("\\boxed{a{b}", None),  # never closed
        ("no box 7", None),
    ],
)
def test_boxed(text, expected):
    assert extract_answer(text, "boxed") == expected
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<answer>42</answer>", "42"),
        ("<answer> 1 </answer> then <answer>\n x = 2 \n</answer>", "x = 2"),
        ("<answer>unclosed", None),
        ("42", None),
    ],
)
def test_answer_tag(text, expected):
    assert extract_answer(text, "answer_tag") == expected


def test_full_strips():
    assert extract_answer("  all of it \n", "full") == "all of it"


def test_unknown_style_raises():
    with pytest.raises(ValueError, match="answer_format 'json'"):
        extract_answer("1", "json")


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("0.5", "1/2"),
        ("1/2", "0.5"),
        ("\\frac{1}{2}", "0.5"),
        ("3", "3.0"),
        ("3.0", "3"),
        ("x=3", "3"),
        ("1000", "1,000"),
        ("-4", "-4"),
        ("\\boxed{1/2}", "0.5"),
        ("2/4", "\\frac{1}{2}"),
    ],
)
def test_math_equal_equivalent(answer, gold):
    assert math_equal(answer, gold) is True


@pytest.mark.parametrize(
    ("answer", "gold"),
    [
        ("2", "3"),
        ("-1", "1"),
        ("0.33", "1/3"),
        ("\\frac{1}{3}", "0.5"),
        ("hello", "3"),
        ("", "3"),
    ],
)
def test_math_equal_not_equivalent(answer, gold):
    assert math_equal(answer, gold) is False


@pytest.mark.parametrize("gold", ["", "   ", "\\frac{"])
def test_unparseable_gold_raises(gold):
    with pytest.raises(ValueError, match="cannot be parsed by math-verify"):
        math_equal("1", gold)
