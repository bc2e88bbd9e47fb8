"""GroupRank's NDCG ranking reward."""

import math

import pytest
import torch

from grpozoo.rewards.ranking import ndcg_at_k, ndcg_reward, score_alignment

LABELS = torch.tensor([3.0, 0.0, 2.0, 1.0])


def test_ndcg_is_1_for_the_ideal_order_and_below_for_others():
    assert float(ndcg_at_k(torch.tensor([9.0, 1.0, 5.0, 2.0]), LABELS)) == pytest.approx(1.0)
    reversed_ = float(ndcg_at_k(torch.tensor([1.0, 9.0, 2.0, 5.0]), LABELS))
    assert reversed_ < 1.0
    # by hand: order d2(0), d4(1), d3(2), d1(3): DCG = 0 + 1/log2(3) + 3/2 + 7/log2(5)
    ideal = 7 + 3 / math.log2(3) + 1 / 2
    assert reversed_ == pytest.approx((1 / math.log2(3) + 3 / 2 + 7 / math.log2(5)) / ideal)


def test_ndcg_is_invariant_to_monotone_rescaling_of_the_scores():
    scores = torch.tensor([0.2, 0.9, 0.5, 0.1])
    for transform in (lambda s: 3 * s + 7, torch.exp, lambda s: s**3, torch.sigmoid):
        assert float(ndcg_at_k(transform(scores), LABELS, k=3)) == pytest.approx(float(ndcg_at_k(scores, LABELS, k=3)))


def test_constant_scores_earn_no_more_than_the_worst_order():
    worst = float(ndcg_at_k(torch.tensor([1.0, 4.0, 2.0, 3.0]), LABELS))
    assert float(ndcg_at_k(torch.ones(4), LABELS)) == pytest.approx(worst)


def test_the_alignment_term_is_1_when_scaled_scores_match_scaled_labels():
    assert float(score_alignment(torch.tensor([30.0, 0.0, 20.0, 10.0]), LABELS)) == pytest.approx(1.0)
    assert float(score_alignment(torch.tensor([0.0, 30.0, 10.0, 20.0]), LABELS)) < 0.5


def test_the_reward_parses_id_score_lines_and_omitting_documents_never_helps():
    relevance = [{"d1": 3, "d2": 0, "d3": 2}] * 4
    completions = [
        "d1: 0.9\nd3: 0.5\nd2: 0.1",       # ideal
        "[d3] = 2\n[d1] = 1",               # d1 below d3, d2 unscored (ranked last)
        "d1: 0.9",                          # only the best: d2 and d3 tie below, worst label first
        "I think d1 is the best.",          # no scores
    ]
    rewards = ndcg_reward(completions, ["q"] * 4, relevance=relevance)
    assert rewards[0] == pytest.approx(1.0) and rewards[3] == 0.0
    assert rewards[1] < 1.0
    ideal = 7 + 3 / math.log2(3)
    assert rewards[2] == pytest.approx((7 + 0 + 3 / 2) / ideal)  # d1, then d2 (0) before d3 (2)
    with pytest.raises(ValueError, match="relevance"):
        ndcg_reward(["d1: 1"], ["q"])
    with pytest.raises(ValueError, match="map document ids"):
        ndcg_reward(["d1: 1"], ["q"], relevance=[[3, 0]])
