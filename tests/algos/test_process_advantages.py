"""Process advantages (CAPO's flagged-step penalty, GRPO-VPS's segment progress) and TW-GRPO's
token weights from intra-group variance."""

from __future__ import annotations

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.process import capo_advantage, grpo_vps_advantage, separator_boundaries
from grpozoo.algos.token_variance import tw_variance_weights

REWARDS = [1.0, 0.0, 1.0, 0.0]
GROUPS = [0, 0, 1, 1]
LENGTHS = [5, 4, 5, 3]


def _batch(**fields):
    return make_rollouts(REWARDS, GROUPS, lengths=LENGTHS, num_tokens=6, **fields)


# ----------------------------------------------------------------------------- CAPO


def test_capo_without_flagged_steps_gives_the_outcome_only_advantage():
    batch = _batch(step_flags=torch.zeros(4, 6))
    rewards = torch.tensor(REWARDS)
    out = capo_advantage(rewards, batch.group_ids, batch)
    expected = grpo_advantage(rewards, batch.group_ids).unsqueeze(1) * batch.completion_mask
    assert torch.allclose(out, expected)


def test_capo_tokens_of_a_flagged_step_have_strictly_lower_advantage_than_the_rest_of_the_response():
    flags = torch.zeros(4, 6)
    flags[0, 1:3] = 1.0  # a correct response with a wrong step
    flags[1, 0:2] = 1.0  # an incorrect one
    batch = _batch(step_flags=flags)
    out = capo_advantage(torch.tensor(REWARDS), batch.group_ids, batch, penalty_correct=0.2, penalty_incorrect=0.5)
    for row, length in ((0, 5), (1, 4)):
        flagged = flags[row, :length].bool()
        assert out[row, :length][flagged].max() < out[row, :length][~flagged].min()
    outcome = grpo_advantage(torch.tensor(REWARDS), batch.group_ids)
    # the penalty differs by the answer's correctness (task score 1 vs 0)
    assert out[0, 1] == pytest.approx(float(outcome[0]) - 0.2)
    assert out[1, 0] == pytest.approx(float(outcome[1]) - 0.5)
    assert (out[:, 5] == 0).all() and out[3, 3:].abs().sum() == 0  # padding


# ----------------------------------------------------------------------------- GRPO-VPS


def _logprobs(values_per_row: dict[int, dict[int, float]]) -> torch.Tensor:
    out = torch.full((4, 7), float("nan"))
    for row, points in values_per_row.items():
        for t, p in points.items():
            out[row, t] = torch.log(torch.tensor(p))
    return out


BOUNDS = {0: [0, 2, 5], 1: [0, 4], 2: [0, 3, 5], 3: [0, 1, 3]}


def test_vps_with_a_constant_answer_probability_is_grpo():
    constant = _logprobs({row: dict.fromkeys(ts, 0.3) for row, ts in BOUNDS.items()})
    batch = _batch(answer_logprobs=constant)
    rewards = torch.tensor(REWARDS)
    for space in ("prob", "log"):
        out = grpo_vps_advantage(rewards, batch.group_ids, batch, beta=1.0, space=space)
        expected = grpo_advantage(rewards, batch.group_ids).unsqueeze(1) * batch.completion_mask
        assert torch.allclose(out, expected, atol=1e-6)


def test_vps_tokens_of_one_segment_share_the_process_term_and_progress_ranks_segments():
    probs = {0: {0: 0.1, 2: 0.6, 5: 0.5}, 1: {0: 0.1, 4: 0.1}, 2: {0: 0.2, 3: 0.2, 5: 0.9}, 3: {0: 0.2, 1: 0.05, 3: 0.3}}
    batch = _batch(answer_logprobs=_logprobs(probs))
    rewards = torch.tensor(REWARDS)
    out = grpo_vps_advantage(rewards, batch.group_ids, batch, beta=0.5)
    process = out - grpo_advantage(rewards, batch.group_ids).unsqueeze(1) * batch.completion_mask
    for row, ts in BOUNDS.items():
        for start, end in zip(ts, ts[1:], strict=False):
            segment = process[row, start:end]
            assert torch.allclose(segment, segment[0].expand_as(segment))  # one term per segment
    assert process[0, 0] > process[0, 2]  # +0.5 beats −0.1 in group 0
    assert process[2, 3] > process[2, 0]  # +0.7 beats 0 in group 1
    assert process[3, 0] < process[3, 1]  # −0.15 below +0.25
    # standardised over the group's segments, each counted once: mean 0 over segments
    group0 = torch.tensor([process[0, 0], process[0, 2], process[1, 0]]) / 0.5
    assert float(group0.mean()) == pytest.approx(0.0, abs=1e-6)


def test_vps_refuses_probabilities_missing_at_the_start_or_end():
    probs = _logprobs({row: dict.fromkeys(ts, 0.3) for row, ts in BOUNDS.items()})
    probs[1, 4] = float("nan")
    batch = _batch(answer_logprobs=probs)
    with pytest.raises(ValueError, match="position 0 and at each row's length"):
        grpo_vps_advantage(torch.tensor(REWARDS), batch.group_ids, batch)


def test_segments_end_after_the_token_that_ends_a_separator():
    texts = [["a", "b\n", "c", "\n", "\n", "d"], ["x", "y"]]
    lines = separator_boundaries(texts, 6, "lines")
    assert lines[0].nonzero().squeeze(1).tolist() == [0, 2, 5, 6]
    assert lines[1].nonzero().squeeze(1).tolist() == [0, 2]
    blank = separator_boundaries(texts, 6, "blank_lines")
    assert blank[0].nonzero().squeeze(1).tolist() == [0, 5, 6]


# ----------------------------------------------------------------------------- TW-GRPO token weights


def test_tw_weights_average_one_over_the_valid_tokens():
    torch.manual_seed(0)
    logprobs = -torch.rand(4, 6) * 3
    batch = _batch(sampling_logprobs=logprobs * make_rollouts(REWARDS, GROUPS, lengths=LENGTHS, num_tokens=6).completion_mask)
    for min_weight in (0.0, 0.3):
        w = tw_variance_weights(batch, min_weight=min_weight)
        mask = batch.completion_mask.bool()
        assert float(w[mask].mean()) == pytest.approx(1.0, abs=1e-6)
        assert (w[~mask] == 0).all()


def test_tw_positions_identical_across_the_group_get_the_minimum_weight():
    mask = make_rollouts(REWARDS, GROUPS, lengths=LENGTHS, num_tokens=6).completion_mask
    logprobs = torch.full((4, 6), -0.5)
    logprobs[0, 2], logprobs[1, 2] = -0.1, -2.0  # group 0 differs at position 2 only
    logprobs[2, 4] = -3.0  # only row 2 of group 1 reaches position 4: nothing to vary against
    logprobs[2, 1], logprobs[3, 1] = -0.2, -1.0
    batch = _batch(sampling_logprobs=logprobs * mask)
    for min_weight in (0.0, 0.25):
        w = tw_variance_weights(batch, min_weight=min_weight)
        real = mask.bool()
        varying = torch.zeros_like(real)
        varying[0, 2] = varying[1, 2] = varying[2, 1] = varying[3, 1] = True
        assert torch.allclose(w[real & ~varying], torch.tensor(min_weight))
        assert (w[varying] > min_weight).all()
        assert float(w[real].min()) == pytest.approx(min_weight)
        assert float(w[real].mean()) == pytest.approx(1.0, abs=1e-6)
    uniform = _batch(sampling_logprobs=torch.full((4, 6), -0.5) * mask)
    assert torch.equal(tw_variance_weights(uniform), mask.float())  # nothing varies: plain GRPO
