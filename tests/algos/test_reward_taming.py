"""PaCo-GRPO's log-tamed multi-reward aggregation."""

from __future__ import annotations

import math

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.reward_taming import log_tamed_sum, paco_log_tamed_advantage


def test_log_tamed_aggregation_is_monotone_in_each_reward():
    base = {"quality": torch.tensor([-3.0, -0.5, 0.0, 0.5, 3.0, 40.0]), "format": torch.tensor([1.0] * 6)}
    total = log_tamed_sum(base)
    assert torch.all(total[1:] > total[:-1])  # increasing in "quality"
    higher = log_tamed_sum({"quality": base["quality"], "format": torch.tensor([2.0] * 6)})
    assert torch.all(higher > total)  # and in "format"


def test_log_tamed_aggregation_damps_a_dominant_reward():
    small = torch.tensor([0.5, 0.5])
    dominant = torch.tensor([10.0, 20.0])  # row 1 gains 10 on the dominant reward
    tamed = log_tamed_sum({"small": small, "dominant": dominant})
    plain = small + dominant
    assert (tamed[1] - tamed[0]) < (plain[1] - plain[0])
    assert (tamed[1] - tamed[0]).item() == pytest.approx(math.log(21.0) - math.log(11.0))
    # a rise of the small reward now weighs far more relative to the dominant one
    assert (log_tamed_sum({"small": small + 1, "dominant": dominant}) - tamed)[0] > 0.5


def test_paco_with_one_binary_reward_is_grpo_and_ignores_environment_counters():
    rewards = torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0])
    groups = torch.tensor([0, 0, 0, 1, 1, 1])
    ctx = make_rollouts(
        rewards, groups, reward_parts={"task": rewards, "turns": torch.full((6,), 5.0)},
        environment_parts={"turns": torch.full((6,), 5.0)},
    )
    out = paco_log_tamed_advantage(rewards, groups, ctx)
    assert torch.allclose(out, grpo_advantage(rewards, groups, ctx), atol=1e-3)
    assert torch.all(out[3:] == 0)


def test_paco_missing_part_values_contribute_nothing():
    parts = {"a": torch.tensor([1.0, float("nan")]), "b": torch.tensor([0.0, 1.0])}
    assert torch.allclose(log_tamed_sum(parts, {"a": 2.0}), torch.tensor([2 * math.log(2.0), math.log(2.0)], dtype=torch.float64))
