"""Format/length surrogate rewards without ground truth (Xin et al. 2025, arXiv:2505.19439)."""

import pytest

from grpozoo.rewards.surrogate import format_ok, rise_and_fall, surrogate_reward

GOOD = "<think>3 times 4 is 12, plus 2 is 14.</think> The answer is \\boxed{14}"


class Poison:
    """An answer key that fails on any use: the reward must never read it."""

    def __getattribute__(self, name):
        raise AssertionError(f"the answer key was read ({name})")

    def __len__(self):
        raise AssertionError("the answer key was read (len)")

    def __iter__(self):
        raise AssertionError("the answer key was read (iter)")

    def __getitem__(self, index):
        raise AssertionError("the answer key was read (item)")


def surrogate(completions, lengths, step=10, total=10, truncated=None, **params):
    size = len(completions)
    return surrogate_reward(
        completions, ["q"] * size, completion_length=lengths, truncated=truncated or [False] * size,
        step=[step] * size, total_steps=[total] * size, **params,
    )


def test_surrogate_format_reward_is_one_only_when_the_regex_matches():
    assert format_ok(GOOD)
    assert format_ok("<think>\nhalf of 1 is\n</think>\n\\boxed{\\frac{1}{2}}\n")
    for bad in (
        "The answer is \\boxed{14}",  # no think block
        "<think>14</think> The answer is 14",  # no box
        "<think>x</think> \\boxed{14} and more words",  # text after the answer
        "\\boxed{14} <think>x</think>",  # box before the thinking
    ):
        assert not format_ok(bad), bad
    assert surrogate([GOOD, "The answer is \\boxed{14}"], [20, 8], step=1) == [1.0, 0.0]
    assert format_ok("ANSWER: 14", pattern=r"^ANSWER: \d+$") and not format_ok("ANSWER: x", pattern=r"^ANSWER: \d+$")


def test_surrogate_does_not_pay_format_tags_with_nothing_inside():
    for empty in ("<think></think>\\boxed{}", "<think> </think>\\boxed{14}", "<think>x</think>\\boxed{  }"):
        assert not format_ok(empty), empty
        assert surrogate([empty], [5]) == [0.0]


def test_surrogate_never_reads_the_answer_key():
    out = surrogate_reward(
        [GOOD, "no format"], ["q", "q"], answer=Poison(), task_score=Poison(), extracted_answer=Poison(),
        completion_length=[256, 256], truncated=[False, False], step=[10, 10], total_steps=[10, 10],
    )
    assert out == [1.5, 0.0]


def test_surrogate_length_term_only_after_the_switch_and_rises_then_falls():
    lengths = [64, 128, 256, 384, 512, 1000]
    assert surrogate([GOOD] * 6, lengths, step=1) == [1.0] * 6  # phase 1: format only
    late = surrogate([GOOD] * 6, lengths, step=10)
    assert late == pytest.approx([1.125, 1.25, 1.5, 1.25, 1.0, 1.0])
    assert rise_and_fall(0, 10, 20) == 0.0 and rise_and_fall(10, 10, 20) == 1.0 and rise_and_fall(25, 10, 20) == 0.0


def test_surrogate_does_not_pay_length_gaming():
    # padding a formatted answer with repeated tokens past the target earns less, not more; a cut-off
    # completion and a long completion without the format earn no length reward at all
    padded = "<think>" + "wait " * 2000 + "</think>\\boxed{14}"
    assert surrogate([GOOD, padded], [256, 2010]) == [1.5, 1.0]
    assert surrogate([GOOD], [256], truncated=[True]) == [1.0]
    assert surrogate(["wait " * 256], [256]) == [0.0]
