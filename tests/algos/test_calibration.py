"""CAPO's calibration-aware advantage (Wang et al. 2026, arXiv:2604.12632)."""

import math

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.calibration import capo_calibration_advantage, pairwise_auc_advantage
from grpozoo.evaluation.metrics import calibration_auc_within_groups


def _batch(rewards, confidences, group_ids, **fields):
    """Rows of 2 tokens whose mean sampling log-prob is the given confidence."""
    logprobs = torch.tensor(confidences, dtype=torch.float32).unsqueeze(1).repeat(1, 2)
    return make_rollouts(rewards, group_ids, num_tokens=2, sampling_logprobs=logprobs, **fields)


def test_capo_less_confident_right_rollout_gets_the_larger_positive_advantage():
    batch = _batch([1, 1, 0, 0], [-0.1, -1.0, -0.2, -2.0], [0, 0, 0, 0])
    adv = capo_calibration_advantage(batch.rewards, batch.group_ids, batch)
    sig = torch.sigmoid
    expected_0 = (sig(torch.tensor(-0.2 + 0.1)) + sig(torch.tensor(-2.0 + 0.1))) / 2
    expected_1 = (sig(torch.tensor(-0.2 + 1.0)) + sig(torch.tensor(-2.0 + 1.0))) / 2
    assert adv[0].item() == pytest.approx(expected_0.item(), rel=1e-5)
    assert adv[1].item() == pytest.approx(expected_1.item(), rel=1e-5)
    assert adv[1] > adv[0] > 0


def test_capo_most_overconfident_wrong_answer_gets_the_most_negative_advantage():
    batch = _batch([1, 0, 0, 0], [-1.0, -0.1, -0.5, -3.0], [0, 0, 0, 0])
    adv = capo_calibration_advantage(batch.rewards, batch.group_ids, batch)
    wrong = adv[1:]
    assert (wrong < 0).all()
    assert int(torch.argmin(wrong)) == 0  # the wrong rollout with confidence −0.1
    assert wrong[0] < wrong[1] < wrong[2]
    assert adv[1].item() == pytest.approx(-torch.sigmoid(torch.tensor(-0.1 + 1.0)).item(), rel=1e-5)


def test_capo_single_class_groups_give_zero():
    batch = _batch([1, 1, 0, 0, 1, 0], [-0.3, -0.7, -0.2, -0.9, -0.5, -0.6], [0, 0, 1, 1, 2, 2])
    adv = capo_calibration_advantage(batch.rewards, batch.group_ids, batch)
    assert adv[:4].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert adv[4] > 0 > adv[5]


def test_capo_pairs_never_cross_groups():
    alone = _batch([1, 0], [-0.5, -0.4], [0, 0])
    together = _batch([1, 0, 1, 0], [-0.5, -0.4, -5.0, -0.01], [0, 0, 1, 1])
    a = capo_calibration_advantage(alone.rewards, alone.group_ids, alone)
    b = capo_calibration_advantage(together.rewards, together.group_ids, together)
    assert torch.allclose(a, b[:2])


def test_capo_noise_masking_drops_close_pairs_and_truncated_rollouts():
    batch = _batch([1, 0, 0], [-0.50, -0.49, -3.0], [0, 0, 0], truncated=torch.tensor([False, False, True]))
    gapped = capo_calibration_advantage(batch.rewards, batch.group_ids, batch, min_gap=0.1)
    assert gapped[1] == 0.0  # its only pair is closer than the gap
    assert gapped[0].item() == pytest.approx(torch.sigmoid(torch.tensor(-3.0 + 0.5)).item(), rel=1e-5)
    untruncated = capo_calibration_advantage(batch.rewards, batch.group_ids, batch, drop_truncated=True)
    assert untruncated[2] == 0.0
    assert untruncated[0].item() == pytest.approx(torch.sigmoid(torch.tensor(0.01)).item(), rel=1e-5)


def test_capo_advantage_ascent_raises_the_within_prompt_calibration_auc():
    # confidences that rank wrong above right; following the advantage (what a policy-gradient step
    # does to each rollout's log-prob) must fix the ranking that `grpozoo eval` scores
    correct = torch.tensor([True, True, False, False, True, False])
    groups = torch.tensor([0, 0, 0, 0, 1, 1])
    c = torch.tensor([-2.0, -1.5, -0.5, -1.0, -3.0, -0.2], dtype=torch.float64)
    before = calibration_auc_within_groups(c.tolist(), correct.tolist(), groups.tolist())
    for _ in range(200):
        c = c + 0.2 * pairwise_auc_advantage(c, correct, groups)
    after = calibration_auc_within_groups(c.tolist(), correct.tolist(), groups.tolist())
    assert before == 0.0 and after == 1.0
    assert math.isfinite(float(c.sum()))
