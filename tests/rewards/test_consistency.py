"""GRPO-CARE's consistency bonus (Chen et al. 2025, arXiv:2506.16141)."""

import pytest
import torch

from grpozoo.rewards.consistency import (
    EmaReference,
    answer_likelihoods,
    answer_spans,
    care_bonus,
    grpo_care_reward,
)


def test_grpo_care_bonus_is_zero_for_wrong_answers_and_monotone_in_the_likelihood_among_right_ones():
    likelihoods = torch.tensor([0.9, 0.1, 0.5, 0.7, 0.95, 0.2, 0.3])
    correct = torch.tensor([False, True, True, True, False, True, True])
    groups = torch.tensor([0, 0, 0, 0, 0, 1, 1])
    bonus = care_bonus(likelihoods, correct, groups, bonus=0.5)
    # group 0: correct mean (0.1 + 0.5 + 0.7)/3 = 0.433; the wrong 0.9 and 0.95 get nothing
    assert bonus.tolist() == [0.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.5]
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        p = torch.rand(8, generator=generator)
        ok = torch.rand(8, generator=generator) > 0.4
        b = care_bonus(p, ok, torch.zeros(8, dtype=torch.long), bonus=1.0)
        assert (b[~ok] == 0).all()
        right = ok.nonzero().flatten().tolist()
        for i in right:
            for j in right:
                if p[i] >= p[j]:
                    assert b[i] >= b[j]


def test_grpo_care_gives_no_bonus_without_correct_peers_or_a_likelihood():
    assert care_bonus(torch.tensor([0.9, 0.1]), torch.tensor([True, False]), torch.tensor([0, 0])).tolist() == [0, 0]
    nan = torch.tensor([float("nan"), 0.2, 0.1])
    assert care_bonus(nan, torch.tensor([True, True, True]), torch.tensor([0, 0, 0]), 1.0).tolist() == [0.0, 1.0, 0.0]


def test_answer_spans_split_at_the_last_occurrence_of_the_answer():
    spans = answer_spans(["so 6*7 = 42, answer 42", "no answer", "x"], ["42", None, "9"])
    assert spans == [("so 6*7 = 42, answer ", "42"), None, None]


def test_answer_likelihoods_are_probabilities_independent_of_the_batching(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lm = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    contexts = ["<u>What is 6*7?</s><a>6*7 is ", "<u>2+2?</s><a>it is", ""]
    targets = ["42", "4", "17"]
    one = answer_likelihoods(lm, tokenizer, contexts, targets, batch_size=1)
    three = answer_likelihoods(lm, tokenizer, contexts, targets, batch_size=3)
    assert one == pytest.approx(three, abs=1e-5)
    assert all(0.0 < p <= 1.0 for p in one)


def test_ema_reference_moves_slowly_and_once_per_step():
    live = torch.nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        live.weight.fill_(0.0)
    reference = EmaReference(live, decay=0.9)
    reference.update(live, step=1)
    with torch.no_grad():
        live.weight.fill_(1.0)
    reference.update(live, step=1)  # the same step again (a refill round): no move
    assert reference.model.weight.tolist() == [[0.0, 0.0]]
    reference.update(live, step=2)
    assert reference.model.weight.flatten().tolist() == pytest.approx([0.1, 0.1])
    assert not reference.model.weight.requires_grad


def test_grpo_care_reward_does_not_pay_a_consistent_wrong_answer(tiny_model_dir):
    # the adversary states its (wrong) answer over and over in its reasoning, which makes the answer
    # as likely as can be given the reasoning: a wrong answer still gets no bonus, and no bonus lifts
    # a wrong answer to a right one's reward
    completions = ["41 41 41 41 41 41 so 41", "6*7=42 so 42", "it is 42", "hm 42"]
    out = grpo_care_reward(
        completions, ["<u>6*7?</s><a>"] * 4, task_score=[0.0, 1.0, 1.0, 1.0], group_id=[0] * 4,
        extracted_answer=["41", "42", "42", "42"], step=[1] * 4, model=str(tiny_model_dir), bonus=0.5,
    )
    assert out[0] == 0.0
    assert all(r in (1.0, 1.5) for r in out[1:]) and 1.5 in out[1:] and 1.0 in out[1:]
    assert max(out[:1]) < min(out[1:])
