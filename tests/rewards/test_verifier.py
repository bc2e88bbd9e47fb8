"""The math verifier (after Huang et al. 2025, verifier pitfalls): normalisation, symbolic equivalence, unreadable gold, multi/hedged answers."""

import threading

import pytest

from grpozoo.registry import rewards
from grpozoo.rewards.math import is_hedged, math_equal, normalize_answer
from grpozoo.rewards.verifiers import boxed_answers, conflicting_boxed, math_verifier_reward

# (answer, gold): each line is one rule of grpozoo.rewards.math's module doc
EQUIVALENT = [
    ("0.5", "1/2"),
    ("\\frac{1}{2}", "1/2"),
    ("\\boxed{\\dfrac12}", "1/2"),  # the paper's own example
    ("\\dfrac{1}{2}", "0.5"),
    ("\\tfrac{1}{2}", "0.5"),
    ("1/2", "\\frac{1}{2}"),
    ("x=3", "3"),
    ("3.0", "3"),
    ("2\\sqrt{2}", "\\sqrt{8}"),
    ("\\frac{\\sqrt{3}}{2}", "\\sqrt{3}/2"),
    ("1.5", "3/2"),
    ("1e3", "1000"),
    ("1,000", "1000"),
    ("1{,}000", "1000"),
    ("1 000", "1000"),
    ("1\\,000", "1000"),
    ("1,234,567.5", "1234567.5"),
    ("100,200", "100200"),  # a whole answer that is one number: the commas are thousands separators
    ("5 \\text{ cm}", "5"),
    ("5 meters", "5"),
    ("\\$5", "5"),
    ("$5", "5"),
    ("90^\\circ", "90"),
    ("90°", "90"),
    ("50%", "0.5"),  # percent rule: p% reads as p/100 ...
    ("50\\%", "0.5"),
    ("50%", "50"),  # ... and as the bare number p
    ("\\text{5}", "5"),
    ("\\mathbf{5}", "5"),
    ("\\textbf{\\text{7}}", "7"),
    ("5.", "5"),
    ("5;", "5"),
    ("$5$", "5"),
    ("\\(5\\)", "5"),
    ("\\[\\boxed{5}\\]", "5"),
    ("\\displaystyle 5", "5"),
    ("\\left(1,2\\right)", "(1,2)"),
    ("\\{1,2\\}", "\\{2,1\\}"),  # sets are unordered
    ("2,3", "3,2"),
    ("(-\\infty, 3]", "(-\\infty,3]"),
    ("\\infty", "\\infty"),
    ("x^2+2x+1", "(x+1)^2"),
    ("5!", "120"),
    ("2^{10}", "1024"),
    ("\\text{(A)}", "A"),
    ("Yes", "yes"),  # word answers compare as case-folded text
]

NOT_EQUIVALENT = [
    ("3", "33"),
    ("1/2", "2"),
    ("2", "3"),
    ("-3", "3"),
    ("0.333", "1/3"),  # a decimal must match to 6 rounded places
    ("3.14", "\\pi"),
    ("50", "0.5"),  # without a percent sign the numbers must be equal
    ("[1,2]", "[1,2)"),  # intervals keep their brackets
    ("(1,2)", "[1,2]"),
    ("\\{1,2\\}", "\\{1,3\\}"),
    ("2, 3", "2"),  # a list of values is not one of its values
    ("2 or 3", "2"),
    ("either 2 or 3", "2"),  # hedged
    ("maybe 2", "2"),
    ("", "3"),
    ("   ", "3"),
    ("hello", "3"),
    ("1,2", "12"),  # a comma before fewer than three digits separates values ...
    ("[100,200]", "[100200]"),  # ... nor inside an interval
    ("sey", "yes"),  # words are not products of symbols: anagrams differ
    ("no", "yes"),
    ("x^2+1", "(x+1)^2"),
    ("12", "120"),
    ("5!", "5"),
]


@pytest.mark.parametrize(("answer", "gold"), EQUIVALENT)
def test_equivalent_pairs(answer, gold):
    assert math_equal(answer, gold) is True


@pytest.mark.parametrize(("answer", "gold"), NOT_EQUIVALENT)
def test_non_equivalent_pairs(answer, gold):
    assert math_equal(answer, gold) is False


def test_the_table_is_large_enough():
    assert len(EQUIVALENT) + len(NOT_EQUIVALENT) >= 30


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  \\boxed{\\dfrac{1}{2}}. ", "\\frac{1}{2}"),
        ("$\\boxed{5}$", "5"),
        ("1,234", "1234"),
        ("[100,200]", "[100,200]"),
        ("\\left( 1, 2 \\right)", "( 1, 2 )"),
        ("50\\%", "50%"),
        ("\\text{ 12 }", "12"),
        ("90^{\\circ}", "90"),
        ("$7", "7"),
        ("2.5e-3", "2.5\\times 10^{-3}"),
    ],
)
def test_normalize_answer(text, expected):
    assert normalize_answer(text) == expected


@pytest.mark.parametrize("gold", ["", "   ", "\\frac{", "(", "\\sqrt", "x^", "?", "5/0", None])
def test_unreadable_gold_is_an_error_never_a_free_reward(gold):
    with pytest.raises(ValueError, match="cannot be parsed by math-verify"):
        math_equal("1", gold)


def test_hedges():
    assert is_hedged("either 2 or 3") and is_hedged("Maybe 4") and is_hedged("possibly 1")
    assert not is_hedged("x = 2") and not is_hedged("2 or 3")  # "or" is read as a set by math-verify


def test_math_equal_works_off_the_main_thread():
    # math-verify's SIGALRM timeout cannot be set in a worker thread; it must not turn into "not equal"
    results = {}

    def work():
        results["equal"] = math_equal("\\frac{1}{2}", "0.5")
        results["different"] = math_equal("2", "3")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert results == {"equal": True, "different": False}


def test_boxed_answers_and_conflicts():
    assert boxed_answers("a \\boxed{1} b \\boxed{\\frac{1}{2}}") == ["1", "\\frac{1}{2}"]
    assert not conflicting_boxed("\\boxed{0.5} so \\boxed{\\frac12}")  # the same answer twice
    assert conflicting_boxed("\\boxed{2} or \\boxed{3}")
    assert not conflicting_boxed("only \\boxed{3}")


def test_reward_accepts_equivalent_forms_a62():
    completions = ["so \\boxed{\\frac{1}{2}}", "so \\boxed{0.5}", "so \\boxed{1/2}", "so \\boxed{\\dfrac12}"]
    out = math_verifier_reward(completions, [""] * 4, answer=["1/2"] * 4, answer_format="boxed")
    assert out == [1.0, 1.0, 1.0, 1.0]


def test_reward_rejects_empty_multi_and_hedged_answers_a62():
    completions = [
        "\\boxed{}",
        "\\boxed{2} and \\boxed{3}",
        "\\boxed{either 2 or 3}",
        "no answer",
        "\\boxed{2}",
    ]
    out = math_verifier_reward(completions, [""] * 5, answer=["2"] * 5, answer_format="boxed")
    assert out == [0.0, 0.0, 0.0, 0.0, 1.0]
    # multi-answer rejection can be turned off
    out = math_verifier_reward(
        completions[1:2], [""], answer=["3"], answer_format="boxed", reject_conflicting=False
    )
    assert out == [1.0]


def test_reward_reads_the_task_extraction_by_default():
    out = math_verifier_reward(["...", "..."], ["", ""], answer=["4", "4"], extracted_answer=["4.0", None])
    assert out == [1.0, 0.0]


def test_reward_raises_on_unreadable_gold_even_for_answerless_completions():
    with pytest.raises(ValueError, match="sample 1.*cannot be parsed"):
        math_verifier_reward(["\\boxed{1}", "none"], ["", ""], answer=["1", "\\frac{"], answer_format="boxed")


def test_reward_needs_the_answer_column():
    with pytest.raises(ValueError, match="needs the column 'answer'"):
        math_verifier_reward(["1"], [""], extracted_answer=["1"])


def test_registered_and_math_verify_still_works():
    assert rewards.get("math_verifier") is math_verifier_reward
    math_verify = rewards.get("math_verify")
    assert math_verify(["it is \\boxed{\\sqrt{8}}"], [""], answer=["2\\sqrt{2}"], answer_format="boxed") == [
        1.0
    ]
