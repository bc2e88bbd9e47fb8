"""Reward shaping: FAPO, GRPO-λ, Posterior-GRPO, unlikeliness, Train Long Think Short, S-GRPO,
DAPO's soft overlong penalty."""

import math

import pytest
import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.registry import rewards
from grpozoo.rewards.shaping import (
    arithmetic_consistency,
    budget_length_reward,
    budget_schedule,
    contradicting_answer_detector,
    fapo_reward,
    grpo_lambda_reward,
    kimi_length_reward,
    posterior_grpo_reward,
    s_grpo_reward,
    soft_overlong_reward,
    stated_answers,
    train_long_think_short_reward,
    unlikeliness_reward,
)


def _advantages(rewards_list, groups=None):
    groups = torch.zeros(len(rewards_list), dtype=torch.long) if groups is None else torch.tensor(groups)
    return grpo_advantage(torch.tensor(rewards_list), groups, scale="none")


# ------------------------------------------------------------------------------------------------ FAPO


class FlagSecond:
    """A detector that flags completions containing 'FLAW' and records what it was shown."""

    def __init__(self):
        self.seen = []

    def __call__(self, completions, prompts, **columns):
        self.seen.extend(completions)
        return ["FLAW" in c for c in completions]


def test_fapo_flawed_positive_is_pushed_up_early_a21():
    detector = FlagSecond()
    completions = ["right", "right FLAW", "wrong", "wrong"]
    out = fapo_reward(completions, [""] * 4, task_score=[1, 1, 0, 0], detector=detector)
    assert out == [1.0, 0.0, -1.0, -1.0]
    # group mean -0.25: the flawed positive's advantage 0 - (-0.25) = 0.25 > 0
    advantage = _advantages(out)
    assert advantage[1].item() == pytest.approx(0.25)


def test_fapo_flawed_positive_is_pushed_down_late_a21():
    out = fapo_reward(["a", "b", "c", "d FLAW"], [""] * 4, task_score=[1, 1, 1, 1], detector=FlagSecond())
    assert out == [1.0, 1.0, 1.0, 0.0]
    assert _advantages(out)[3].item() == pytest.approx(-0.75)  # mean 0.75


def test_fapo_incorrect_rollouts_never_reach_the_detector_a21():
    detector = FlagSecond()
    fapo_reward(["ok FLAW", "bad FLAW", "bad"], [""] * 3, task_score=[1, 0, 0.5], detector=detector)
    assert detector.seen == ["ok FLAW"]


def test_fapo_detector_receives_sliced_columns():
    seen = {}

    def spy(completions, prompts, answer, **columns):
        seen.update(answer=answer, score=columns["task_score"])
        return [False] * len(completions)

    fapo_reward(["a", "b", "c"], [""] * 3, task_score=[0, 1, 1], answer=["x", "y", "z"], detector=spy)
    assert seen == {"answer": ["y", "z"], "score": [1, 1]}


def test_default_detector_flags_a_contradicting_earlier_answer():
    completions = [
        "2+2 = 5, so the answer is 5. Wait, recheck: 2+2=4. \\boxed{4}",
        "2+2=4 so the answer is 4. \\boxed{4}",
        "First \\boxed{0.5}, in other words \\boxed{\\frac{1}{2}}",
        "\\boxed{7}",
    ]
    flags = contradicting_answer_detector(
        completions, [""] * 4, extracted_answer=["4", "4", "\\frac{1}{2}", "7"]
    )
    assert flags == [True, False, False, False]
    assert stated_answers(completions[0]) == ["5", "4"]


def test_fapo_default_detector_end_to_end():
    out = fapo_reward(
        ["answer: 3 ... \\boxed{4}", "\\boxed{4}"], ["", ""], task_score=[1, 1], extracted_answer=["4", "4"]
    )
    assert out == [0.0, 1.0]


# ------------------------------------------------------------------------------------------------ GRPO-λ


def test_kimi_length_reward_by_hand():
    # lengths 10, 20, 30: λ = 0.5, 0, -0.5; the wrong one keeps min(0, λ)
    assert kimi_length_reward([10, 20, 30], [True, False, True]) == [0.5, 0.0, -0.5]
    assert kimi_length_reward([10, 30], [False, False]) == [0.0, -0.5]
    assert kimi_length_reward([5, 5], [True, True]) == [0.0, 0.0]


GROUPS = [0, 0, 0, 1, 1, 1, 2, 2, 2]
SCORES = [1, 1, 1, 1, 0, 0, 0, 0, 0]  # c = 1, 1/3, 0
LENGTHS = [10, 20, 30, 10, 20, 30, 10, 20, 30]


def _lambda(top_fraction):
    return grpo_lambda_reward(
        [""] * 9,
        [""] * 9,
        task_score=SCORES,
        group_id=GROUPS,
        completion_length=LENGTHS,
        top_fraction=top_fraction,
    )


def test_grpo_lambda_zero_is_grpo_b10():
    assert _lambda(0.0) == [float(s) for s in SCORES]


def test_grpo_lambda_top_group_gets_the_length_reward_b10():
    out = _lambda(1 / 3)  # one of three groups: the best (c = 1)
    assert out[:3] == [1.5, 1.0, 0.5]  # 1 + (0.5, 0, -0.5): shorter right answers earn more
    assert out[3:] == [1.0, 0.0, 0.0, 0.0, 0.0, 0.0]


def test_grpo_lambda_all_wrong_group_stays_zero_one_b10():
    out = _lambda(1.0)  # every group with c > 0 is shaped ...
    assert out[3:6] == [1.5, 0.0, -0.5]
    assert out[6:] == [0.0, 0.0, 0.0]  # ... but the all-wrong group keeps pure 0/1


def test_grpo_lambda_among_right_answers_shorter_is_higher_b10():
    out = grpo_lambda_reward(
        [""] * 4,
        [""] * 4,
        task_score=[1, 1, 1, 0],
        group_id=[0] * 4,
        completion_length=[40, 5, 17, 1],
        top_fraction=1,
    )
    right = sorted([(5, out[1]), (17, out[2]), (40, out[0])])
    assert [r for _, r in right] == sorted([r for _, r in right], reverse=True)


def test_grpo_lambda_rejects_bad_fraction():
    with pytest.raises(ValueError, match="top_fraction=1.5"):
        _lambda(1.5)


# ------------------------------------------------------------------------------------------ Posterior-GRPO


def _process(values):
    def score(completions, prompts, process_value, **columns):
        return list(process_value)

    return score


def test_posterior_grpo_failed_outcome_ignores_the_process_b21():
    fn = _process(None)
    low = posterior_grpo_reward(["a"], [""], task_score=[0], process=fn, process_value=[0.0])
    high = posterior_grpo_reward(["a"], [""], task_score=[0], process=fn, process_value=[1.0])
    assert low == high == [0.0]


def test_posterior_grpo_success_is_monotone_in_process_b21():
    values = [0.0, 0.3, 0.9, 1.0]
    out = posterior_grpo_reward(
        ["a"] * 4, [""] * 4, task_score=[1] * 4, process=_process(None), process_value=values
    )
    assert out == pytest.approx([1.0, 1.15, 1.45, 1.5])  # 1 + 0.5 · r_process


def test_posterior_grpo_reduces_to_outcome_only_b21():
    out = posterior_grpo_reward(
        ["a", "b"], ["", ""], task_score=[1, 0], process=_process(None), process_value=[0.0, 0.0]
    )
    assert out == [1.0, 0.0]


def test_posterior_grpo_format_term_and_default_process():
    out = posterior_grpo_reward(
        ["3 + 4 = 7 then 7 * 2 = 15 <answer>15</answer>", "<answer>1</answer>", "no tag"],
        [""] * 3,
        task_score=[1, 0, 0],
        format_style="answer_tag",
        format_weight=0.2,
    )
    assert out == pytest.approx([0.2 + 1.0 + 0.5 * 0.5, 0.2, 0.0])


def test_arithmetic_consistency_by_hand():
    texts = ["2 + 3 = 5 and 10 / 4 = 2.5", "6 × 7 = 42, 9 - 10 = 1", "nothing to check", "1 / 0 = 3"]
    assert arithmetic_consistency(texts, [""] * 4) == [1.0, 0.5, 0.0, 0.0]


# -------------------------------------------------------------------------------------------- Unlikeliness


def _unlikely(scores, logprobs, groups=None, **params):
    size = len(scores)
    return unlikeliness_reward(
        [""] * size,
        [""] * size,
        task_score=scores,
        mean_logprob=logprobs,
        group_id=groups or [0] * size,
        **params,
    )


def test_unlikeliness_by_hand_b40():
    # ranks by likelihood: -3.0 -> 0, -2.0 -> 1, -1.0 -> 2, -0.5 -> 3; G = 4
    out = _unlikely([1, 1, 0, 1], [-1.0, -3.0, -2.0, -0.5])
    assert out == pytest.approx([1 - 0.25 * 2 / 4, 1.0, 0.0, 1 - 0.25 * 3 / 4])


@pytest.mark.parametrize("rank_among", ["all", "correct"])
def test_unlikeliness_properties_b40(rank_among):
    logprobs = [-0.1, -0.7, -0.3, -0.5, -1.1]  # the least likely (-1.1) is a right answer
    out = _unlikely([1, 1, 1, 0, 1], logprobs, rank_among=rank_among)
    correct = [i for i in range(5) if i != 3]
    by_likelihood = sorted(correct, key=lambda i: logprobs[i])
    assert [out[i] for i in by_likelihood] == sorted([out[i] for i in correct], reverse=True)  # 1. decreasing
    assert len({out[i] for i in correct}) == 4  # strictly
    assert out[3] == 0.0  # 2. a wrong answer stays 0
    assert out[by_likelihood[0]] == 1.0  # 4. the least likely right answer keeps r
    assert _unlikely([1, 1, 0, 1, 1], logprobs, beta_rank=0.0) == [
        1.0,
        1.0,
        0.0,
        1.0,
        1.0,
    ]  # 3. β = 0 is GRPO


def test_unlikeliness_rank_among_the_group_or_the_right_answers():
    # the wrong answer (-2.0) is the least likely: with the authors' ranking over the whole group it
    # takes rank 0 and the least likely right answer (-1.1) gets rank 1
    logprobs = [-0.1, -1.1, -2.0]
    assert _unlikely([1, 1, 0], logprobs) == pytest.approx([1 - 0.25 * 2 / 3, 1 - 0.25 / 3, 0.0])
    assert _unlikely([1, 1, 0], logprobs, rank_among="correct") == pytest.approx([1 - 0.25 / 3, 1.0, 0.0])
    with pytest.raises(ValueError, match="rank_among='wrong'"):
        _unlikely([1], [0.0], rank_among="wrong")


def test_unlikeliness_ranks_within_groups():
    out = _unlikely([1, 1, 1, 1], [-1.0, -2.0, -5.0, -0.1], groups=[0, 0, 1, 1])
    assert out == pytest.approx([1 - 0.25 / 2, 1.0, 1.0, 1 - 0.25 / 2])


# ----------------------------------------------------------------------------------- Train Long Think Short


@pytest.mark.parametrize("schedule", ["exponential", "linear"])
def test_budget_schedule_is_non_increasing_and_ends_at_final_b38(schedule):
    budgets = [budget_schedule(t, 10, 1000, 100, schedule) for t in range(1, 11)]
    assert budgets[0] == pytest.approx(1000) and budgets[-1] == pytest.approx(100)
    assert all(a >= b for a, b in zip(budgets, budgets[1:], strict=False))
    assert budget_schedule(15, 10, 1000, 100, schedule) == pytest.approx(100)


def test_budget_schedule_values():
    assert budget_schedule(2, 3, 400, 100, "exponential") == pytest.approx(200)  # 400 · (1/4)^(1/2)
    assert budget_schedule(2, 3, 400, 100, "linear") == pytest.approx(250)
    assert budget_schedule(1, 1, 400, 100) == 100


@pytest.mark.parametrize("decay", ["linear", "exponential"])
def test_length_reward_is_non_increasing_b38(decay):
    values = [budget_length_reward(length, 100, decay) for length in range(0, 400, 7)]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))
    assert budget_length_reward(100, 100, decay) == 1.0


def test_length_reward_values():
    assert budget_length_reward(150, 100, "linear") == 0.5
    assert budget_length_reward(300, 100, "linear") == 0.0
    assert budget_length_reward(200, 100, "exponential") == pytest.approx(math.exp(-1))


def test_train_long_think_short_correctness_dominates_b38():
    # a right but long, tagless answer beats a wrong, short, well-formatted one
    out = train_long_think_short_reward(
        ["long right", "<answer>x</answer>"],
        ["", ""],
        task_score=[1, 0],
        completion_length=[10_000, 1],
        step=[5, 5],
        total_steps=[5, 5],
    )
    assert out == [1.0, 0.5 + 0.25]


def test_train_long_think_short_budget_tightens_over_training():
    kwargs = dict(
        task_score=[1], completion_length=[128], budget_start=256, budget_final=64, format_style=None
    )
    early = train_long_think_short_reward(["a"], [""], step=[1], total_steps=[3], **kwargs)
    late = train_long_think_short_reward(["a"], [""], step=[3], total_steps=[3], **kwargs)
    assert early == [1.5]  # 128 <= 256
    assert late == [1.0]  # 128 is twice the final 64: the linear decay reaches 0


# ---------------------------------------------------------------------------------------------- S-GRPO


def _s_grpo(scores, positions, mode="count"):
    size = len(scores)
    return s_grpo_reward(
        [""] * size, [""] * size, task_score=scores, group_id=[0] * size, exit_position=positions, mode=mode
    )


def test_s_grpo_all_correct_strictly_decreasing_b13():
    out = _s_grpo([1, 1, 1, 1], [100, 200, 300, 400])
    assert out == [1.0, 0.5, 0.25, 0.125]


def test_s_grpo_wrong_exits_get_zero_and_count_mode_b13():
    # exits at 1..5: wrong, right, wrong, right, right (the last is the full trace)
    out = _s_grpo([0, 1, 0, 1, 1], [1, 2, 3, 4, 5])
    assert out == [0.0, 1.0, 0.0, 0.5, 0.25]
    assert out[-1] <= min(r for r in out[:-1] if r > 0)  # 3. the full exit never beats an earlier right one
    assert _s_grpo([0, 1, 0, 1, 1], [1, 2, 3, 4, 5], mode="position") == [0.0, 0.5, 0.0, 0.125, 0.0625]


def test_s_grpo_uses_lengths_without_exit_positions():
    out = s_grpo_reward(
        ["", "", ""], [""] * 3, task_score=[1, 1, 0], group_id=[0, 0, 0], completion_length=[30, 10, 5]
    )
    assert out == [0.5, 1.0, 0.0]


def test_s_grpo_ties_share_a_reward():
    assert _s_grpo([1, 1, 1], [7, 7, 9]) == [1.0, 1.0, 0.25]


# ------------------------------------------------------------------------------------------ soft overlong


def test_soft_overlong_by_hand():
    # L_max 100, cache 20: 0 up to 80, linear to -1 at 100
    out = soft_overlong_reward(
        [""] * 6, [""] * 6, completion_length=[10, 80, 85, 90, 100, 120], max_length=100, cache_length=20
    )
    assert out == pytest.approx([0.0, 0.0, -0.25, -0.5, -1.0, -1.0])


def test_soft_overlong_default_cache_is_a_fifth():
    out = soft_overlong_reward([""] * 2, [""] * 2, completion_length=[400, 450], max_length=500)
    assert out == pytest.approx([0.0, -0.5])


def test_soft_overlong_needs_max_length():
    with pytest.raises(ValueError, match="max_length.*rollout.max_new_tokens"):
        soft_overlong_reward([""], [""], completion_length=[3])
    with pytest.raises(ValueError, match="cache_length=200"):
        soft_overlong_reward([""], [""], completion_length=[3], max_length=100, cache_length=200)


# ------------------------------------------------------------------------------------------------ shared


@pytest.mark.parametrize(
    "name",
    [
        "fapo",
        "grpo_lambda",
        "posterior_grpo",
        "unlikeliness",
        "train_long_think_short",
        "s_grpo",
        "soft_overlong",
    ],
)
def test_registered(name):
    assert callable(rewards.get(name))


def test_missing_task_score_is_a_clear_error():
    with pytest.raises(ValueError, match="reward 'fapo' needs the column 'task_score'"):
        fapo_reward(["a"], [""])
