"""PIPO's closed-loop token weight: a sliding window of past batch rewards in ctx.state."""

from __future__ import annotations

import math

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.closed_loop import improvement_weight, pipo_weight


def _step(state: dict, step: int, rewards: list[float], lengths: list[int] | None = None, **params):
    ctx = make_rollouts(rewards, lengths=lengths or [3] * len(rewards), step=step, total_steps=20, state=state)
    return pipo_weight(ctx, **params), ctx


def test_pipo_constant_rewards_reduce_to_the_base_loss():
    state: dict = {}
    for step in range(1, 6):
        weight, ctx = _step(state, step, [0.5, 0.5, 0.5, 0.5], lengths=[3, 1, 0, 2])
        assert torch.equal(weight, ctx.completion_mask.float())  # 1 on real tokens, 0 on padding
    assert state["pipo"]["improvement"] == 0.0


def test_pipo_weight_is_above_one_iff_the_batch_reward_improved():
    state: dict = {}
    _step(state, 1, [0.0, 1.0])  # J = 0.5
    _step(state, 2, [0.0, 0.0])  # J = 0.0
    up, _ = _step(state, 3, [1.0, 1.0])  # J = 1.0 > mean(0.5, 0.0)
    assert up.max() > 1.0 and state["pipo"]["improvement"] > 0
    down, _ = _step(state, 4, [0.0, 0.0])  # J = 0.0 < mean(0.5, 0.0, 1.0)
    assert down.max() < 1.0 and state["pipo"]["improvement"] < 0
    # by hand: history (0.5, 0, 1), J = 0; Δ = −0.5, spread = std(0.5, 0, 1, 0)
    spread = math.sqrt(sum((v - 0.375) ** 2 for v in (0.5, 0.0, 1.0, 0.0)) / 4)
    assert down[0, 0].item() == pytest.approx(1 + 0.5 * math.tanh(-0.5 / spread), rel=1e-5)


def test_pipo_first_step_and_repeated_call_within_a_step():
    state: dict = {}
    first, _ = _step(state, 1, [1.0, 0.0])
    assert torch.equal(first, torch.ones(2, 3))  # no history: weight 1
    a, _ = _step(state, 2, [1.0, 1.0])
    b, _ = _step(state, 2, [1.0, 1.0])  # the same step again: same weight, J recorded once
    assert torch.equal(a, b)
    assert [s for s, _ in state["pipo"]["history"]] == [1, 2]


def test_pipo_window_keeps_only_the_last_steps():
    state: dict = {}
    for step, r in enumerate([0.0, 0.0, 0.0, 1.0, 1.0], start=1):
        _step(state, step, [r], window=2)
    assert state["pipo"]["history"] == [[4, 1.0], [5, 1.0]]
    assert improvement_weight([1.0, 1.0], 1.0, 0.5) == (1.0, 0.0)
