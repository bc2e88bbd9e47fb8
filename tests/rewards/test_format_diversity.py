"""Ada-GRPO's format-diversity reward scaling (Wu et al. 2025, "ARM: Adaptive Reasoning Model", arXiv:2505.20258)."""

import pytest

from grpozoo.rewards.format_diversity import (
    ada_grpo_reward,
    cosine_decay,
    format_diversity_scale,
    reasoning_format,
)

LONG = "<LONG_COT>" + "let me think again. " * 40 + "</LONG_COT> 42"


def ada(completions, scores, step=1, total=11, lengths=None):
    size = len(completions)
    return ada_grpo_reward(
        completions, ["q"] * size, task_score=scores, group_id=[0] * size,
        completion_length=lengths or [len(c) // 4 for c in completions], step=[step] * size,
        total_steps=[total] * size,
    )


def test_ada_grpo_one_format_for_the_whole_group_gives_alpha_one():
    assert ada([LONG] * 4, [1.0, 1.0, 0.0, 1.0], step=1) == [1.0, 1.0, 0.0, 1.0]


def test_ada_grpo_a_singleton_format_gets_alpha_g_at_the_start_and_one_at_the_end():
    group = [LONG, LONG, LONG, "<ANSWER>42</ANSWER>"]
    assert ada(group, [1.0] * 4, step=1) == pytest.approx([4 / 3, 4 / 3, 4 / 3, 4.0])
    assert ada(group, [1.0] * 4, step=11) == pytest.approx([1.0] * 4)
    middle = ada(group, [1.0] * 4, step=6)  # d = 1/2
    assert middle == pytest.approx([1 + (4 / 3 - 1) / 2] * 3 + [1 + 3 / 2])


def test_ada_grpo_wrong_answers_stay_zero_whatever_their_format():
    group = [LONG, LONG, LONG, "<ANSWER>41</ANSWER>"]
    assert ada(group, [1.0, 1.0, 1.0, 0.0], step=1)[3] == 0.0


def test_ada_grpo_does_not_pay_a_format_tag_with_nothing_inside():
    # the adversary claims the rare <CODE> format with an empty block, and with a block that holds
    # no code: it is judged by what it wrote (a direct answer like its peers), so α stays 1
    direct = "<ANSWER>42</ANSWER>"
    for spoof in ("<CODE></CODE> 42", "<CODE>  \n </CODE> 42", "<CODE>the answer is 42</CODE>"):
        assert reasoning_format(spoof, 3) == "direct"
        assert ada([direct, direct, direct, spoof], [1.0] * 4, step=1) == [1.0] * 4
    # real code in the block is the code format
    assert reasoning_format("<CODE>```python\nprint(6*7)\n```</CODE> 42", 12) == "code"


def test_reasoning_formats():
    assert reasoning_format("42", 1) == "direct"
    assert reasoning_format("First add 3 and 4, which gives 7, then multiply by 6 to get 42.", 20) == "short_cot"
    assert reasoning_format("x " * 300, 300) == "long_cot"
    assert reasoning_format("<COT>6 times 7 is 42</COT> 42", 8) == "short_cot"


def test_decay_and_scale():
    assert cosine_decay(0, 10) == 1.0 and cosine_decay(10, 10) == 0.0 and cosine_decay(5, 10) == pytest.approx(0.5)
    assert format_diversity_scale(1, 8, 1.0) == 8.0 and format_diversity_scale(8, 8, 1.0) == 1.0
