"""Label-free rewards: TTRL majority vote, EMPO cluster frequency, EVOL-RL majority + novelty."""

import itertools

import pytest
import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.registry import rewards
from grpozoo.rewards.label_free import (
    char_ngram_tfidf,
    cluster_answers,
    cosine,
    empo_reward,
    evol_rl_reward,
    majority_cluster,
    novelty_scores,
    ttrl_reward,
)


def _call(fn, answers, groups=None, completions=None, **params):
    size = len(answers)
    completions = completions or [f"text {i}" for i in range(size)]
    groups = groups or [0] * size
    return fn(completions, [""] * size, group_id=groups, extracted_answer=answers, **params)


# ------------------------------------------------------------------------------------------ clustering


def test_clusters_by_mathematical_equivalence():
    assert cluster_answers(["1/2", "0.5", "\\frac{1}{2}", "2", None, "2.0"]) == [0, 0, 0, 1, None, 1]
    assert cluster_answers(["1/2", "0.5"], equivalence="exact") == [0, 1]
    assert cluster_answers(["Paris", "paris", "Rome"]) == [0, 0, 1]


def test_majority_tie_goes_to_the_first_seen():
    assert majority_cluster([1, 0, 0, 1]) == 1
    assert majority_cluster([None, None]) is None


def test_unknown_equivalence_is_an_error():
    with pytest.raises(ValueError, match="equivalence='fuzzy'"):
        cluster_answers(["1"], equivalence="fuzzy")


# ------------------------------------------------------------------------------------------------ TTRL


def test_ttrl_rewards_the_majority_answer():
    assert _call(ttrl_reward, ["4", "4", "5", None]) == [1.0, 1.0, 0.0, 0.0]
    # 0.5 and 1/2 vote together and outnumber 3
    assert _call(ttrl_reward, ["0.5", "3", "1/2", "3", "\\frac12"]) == [1.0, 0.0, 1.0, 0.0, 1.0]


def test_ttrl_votes_within_each_group():
    out = _call(ttrl_reward, ["1", "1", "2", "7", "8", "8"], groups=[0, 0, 0, 1, 1, 1])
    assert out == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


def test_ttrl_no_answers_and_empty_batch():
    assert _call(ttrl_reward, [None, None]) == [0.0, 0.0]
    assert ttrl_reward([], [], group_id=[], extracted_answer=[]) == []


def test_ttrl_needs_the_group_column():
    with pytest.raises(ValueError, match="needs the column 'group_id'"):
        ttrl_reward(["a"], [""], extracted_answer=["1"])


# ------------------------------------------------------------------------------------------------ EMPO


def test_empo_cluster_frequency_a6():
    assert _call(empo_reward, ["a", "a", "b", "c"]) == [0.5, 0.5, 0.25, 0.25]


def test_empo_all_identical_gives_one_and_zero_advantage_a6():
    out = _call(empo_reward, ["7", "7.0", "7", "7"])
    assert out == [1.0, 1.0, 1.0, 1.0]
    advantage = grpo_advantage(torch.tensor(out), torch.zeros(4, dtype=torch.long))
    assert torch.equal(advantage, torch.zeros(4))


def test_empo_is_invariant_to_rollout_order_a6():
    answers = ["a", "b", "a", "c", "a", None]
    reference = dict(zip(range(6), _call(empo_reward, answers), strict=True))
    for order in itertools.permutations(range(6)):
        out = _call(empo_reward, [answers[i] for i in order])
        assert out == [reference[i] for i in order]


def test_empo_answerless_completions_score_zero_but_count_in_g():
    assert _call(empo_reward, ["a", "a", None, None]) == [0.5, 0.5, 0.0, 0.0]


def test_empo_entropy_band_drops_uncertain_groups():
    # group 0: four different answers (entropy log 4 = max); group 1: unanimous
    out = _call(
        empo_reward, ["a", "b", "c", "d", "e", "e", "e", "e"], groups=[0] * 4 + [1] * 4, max_entropy_ratio=0.9
    )
    assert out == [None] * 4 + [1.0] * 4


# --------------------------------------------------------------------------------------------- EVOL-RL


def test_tfidf_vectors_are_unit_and_cosine_is_one_for_equal_texts():
    vectors = char_ngram_tfidf(["the cat sat", "the cat sat", "quantum flux"])
    assert cosine(vectors[0], vectors[1]) == pytest.approx(1.0)
    assert cosine(vectors[0], vectors[2]) == pytest.approx(0.0)
    assert sum(v * v for v in vectors[2].values()) == pytest.approx(1.0)


def test_novelty_by_hand():
    # two identical texts and one unrelated: the identical pair has max-sim 1 and same-class mean 1
    u = novelty_scores(["abc abc", "abc abc", "xyz qrs"], [1, 1, 1])
    # u = 1 − (0.5 · mean(1, 0) + 0.5 · 1) = 0.25 for the twins; 1 − (0.5·0 + 0.5·0) = 1 for the odd one
    assert u == pytest.approx([0.25, 0.25, 1.0])


def test_evol_rl_bands_and_order_b26():
    completions = [
        "we add the numbers and get 4",
        "adding gives 4",
        "four, by counting on fingers twice",
        "we add and get 5",
        "maybe 6 after some odd reasoning",
        "I cannot tell",
    ]
    out = _call(evol_rl_reward, ["4", "4", "4", "5", "6", None], completions=completions)
    majority, minority, invalid = out[:3], out[3:5], out[5]
    # 1. every majority reward is above every minority reward, in the code-verified bands
    assert min(majority) > max(minority)
    assert all(0.5 <= r <= 1.0 for r in majority) and all(-1.0 <= r <= -0.5 for r in minority)
    # 3. an invalid answer gets -1
    assert invalid == -1.0
    # min-max normalised novelty: the extremes of a class of 2+ sit at the band's ends
    assert max(majority) == 1.0 and min(majority) == 0.5
    assert max(minority) == -0.5 and min(minority) == -1.0


def test_evol_rl_reward_is_monotone_in_novelty_within_a_class_b26():
    completions = ["the answer is 4", "the answer is 4", "the answer is four", "totally different words, 4"]
    answers = ["4", "4", "4", "4"]
    out = _call(evol_rl_reward, answers, completions=completions)
    u = novelty_scores(completions, [1, 1, 1, 1])
    by_novelty = sorted(range(4), key=lambda i: u[i])
    assert [out[i] for i in by_novelty] == sorted(out)
    assert out[0] == out[1]  # equal texts, equal novelty, equal reward


def test_evol_rl_identical_responses_get_the_midpoint_b26():
    out = _call(evol_rl_reward, ["1", "1", "2", "2", "1"], completions=["same"] * 5)
    assert out == [0.75, 0.75, -0.75, -0.75, 0.75]


def test_evol_rl_singleton_classes_b26():
    # majority "3" (2 votes) has two members; the minority class is a single "9"
    out = _call(evol_rl_reward, ["3", "9", "3"], completions=["x", "y", "z"])
    assert out[1] == -0.5
    # a group of one: a majority of one gets 1.0
    assert _call(evol_rl_reward, ["3"]) == [1.0]


def test_evol_rl_embeds_the_text_after_thinking():
    think = ["<think>long shared preamble</think> alpha", "<think>long shared preamble</think> alpha"]
    out = _call(evol_rl_reward, ["1", "1", "1"], completions=[*think, "<think>other</think> beta gamma"])
    assert out[0] == out[1] == 0.5 and out[2] == 1.0


def test_label_free_rewards_are_registered():
    assert rewards.get("ttrl") is ttrl_reward
    assert rewards.get("empo") is empo_reward
    assert rewards.get("evol_rl") is evol_rl_reward
