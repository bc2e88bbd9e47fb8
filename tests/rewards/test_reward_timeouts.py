"""Rewards run at the same time, and a reward that times out is missing and counted, never 0 or 1.

Concurrency is shown with barriers, not clocks: a barrier of n parties is passed only when n
rewards are waiting at it at once, so run one after another they would fail.
"""

from __future__ import annotations

import asyncio
import math
import threading

import pydantic
import pytest
import torch

from grpozoo.config import RewardConfig
from grpozoo.rewards import RewardError, RewardModel
from grpozoo.rewards.combine import RewardScores

COMPLETIONS = ["a", "bb", "ccc"]
PROMPTS = ["p0", "p1", "p2"]
BARRIER_S = 10  # how long a barrier waits for the others before it breaks (a failure, not a timing)


def _model(*specs, **functions):
    return RewardModel([RewardConfig(**s) for s in specs], functions=functions)


def _at_barrier(barrier: threading.Barrier, value: float):
    def reward(completions, prompts, **columns):
        barrier.wait(BARRIER_S)
        return [value] * len(completions)

    return reward


def _at_barrier_async(barrier: threading.Barrier, value: float):
    async def reward(completions, prompts, **columns):
        await asyncio.to_thread(barrier.wait, BARRIER_S)
        return [value] * len(completions)

    return reward


def test_sync_rewards_run_at_the_same_time():
    barrier = threading.Barrier(3)
    fns = {"a": _at_barrier(barrier, 1.0), "b": _at_barrier(barrier, 2.0), "c": _at_barrier(barrier, 4.0)}
    total, parts = _model({"name": "a"}, {"name": "b"}, {"name": "c", "timeout_s": 30}, **fns)(
        COMPLETIONS, PROMPTS, {}
    )
    torch.testing.assert_close(total, torch.full((3,), 7.0))
    assert list(parts) == ["a", "b", "c"]  # in the configured order, whatever order they finished in


def test_sync_and_async_rewards_run_at_the_same_time():
    barrier = threading.Barrier(3)
    fns = {
        "s": _at_barrier(barrier, 1.0),
        "x": _at_barrier_async(barrier, 2.0),
        "y": _at_barrier_async(barrier, 3.0),
    }
    total, _ = _model({"name": "s"}, {"name": "x"}, {"name": "y", "weight": 2.0}, **fns)(
        COMPLETIONS, PROMPTS, {}
    )
    torch.testing.assert_close(total, torch.full((3,), 9.0))


def test_a_sync_reward_past_its_timeout_is_missing_for_the_batch_and_counted():
    release = threading.Event()

    def stuck(completions, prompts, **columns):
        release.wait(60)
        return [1.0] * len(completions)

    def length(completions, prompts, **columns):
        return [float(len(c)) for c in completions]

    model = _model(
        {"name": "stuck", "timeout_s": 0.2, "weight": 5.0}, {"name": "length"}, stuck=stuck, length=length
    )
    assert model.timeout_metrics() == {"reward/stuck/timeouts": 0.0}
    try:
        with pytest.warns(RuntimeWarning, match=r"reward 'stuck' did not finish within timeout_s=0.2"):
            total, parts = model(COMPLETIONS, PROMPTS, {})
    finally:
        release.set()
    assert torch.isnan(parts["stuck"]).all()  # missing, never a silent 0 or 1
    torch.testing.assert_close(parts["length"], torch.tensor([1.0, 2.0, 3.0]))
    torch.testing.assert_close(total, torch.tensor([1.0, 2.0, 3.0]))  # the other reward alone
    assert model.timeout_metrics() == {"reward/stuck/timeouts": 3.0}  # every sample of the batch
    assert model.timeout_metrics() == {"reward/stuck/timeouts": 0.0}  # counted per step


def test_an_async_reward_past_its_timeout_is_cancelled_and_missing():
    cancelled = threading.Event()

    async def sleepy(completions, prompts, **columns):
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return [1.0] * len(completions)

    model = _model({"name": "sleepy", "timeout_s": 0.2}, sleepy=sleepy)
    with pytest.warns(RuntimeWarning, match="reward 'sleepy' did not finish"):
        total, parts = model(COMPLETIONS, PROMPTS, {})
    assert torch.isnan(parts["sleepy"]).all()
    torch.testing.assert_close(total, torch.zeros(3))
    assert cancelled.wait(10)
    assert model.timeout_metrics() == {"reward/sleepy/timeouts": 3.0}


def test_a_reward_within_its_timeout_is_kept():
    def quick(completions, prompts, **columns):
        return [0.0, 1.0, 0.5]

    model = _model({"name": "quick", "timeout_s": 30}, quick=quick)
    _, parts = model(COMPLETIONS, PROMPTS, {})
    torch.testing.assert_close(parts["quick"], torch.tensor([0.0, 1.0, 0.5]))
    assert model.timeout_metrics() == {"reward/quick/timeouts": 0.0}


def test_timeouts_a_reward_reports_itself_are_counted():
    def partly_slow(completions, prompts, **columns):
        return RewardScores([1.0, None, None], timeouts=2)

    model = _model({"name": "partly_slow"}, partly_slow=partly_slow)
    assert model.timeout_metrics() == {}  # neither a timeout_s nor reports_timeouts: no key yet
    _, parts = model(COMPLETIONS, PROMPTS, {})
    assert parts["partly_slow"][0] == 1.0 and torch.isnan(parts["partly_slow"][1:]).all()
    assert model.timeout_metrics() == {"reward/partly_slow/timeouts": 2.0}
    assert model.timeout_metrics() == {"reward/partly_slow/timeouts": 0.0}  # logged from then on


def test_reward_scores_is_a_list():
    scores = RewardScores([1.0, None], timeouts=1)
    assert scores == [1.0, None] and isinstance(scores, list) and scores.timeouts == 1


def test_a_reward_that_raises_in_its_thread_is_named():
    def broken(completions, prompts, **columns):
        raise ZeroDivisionError("division by zero")

    def fine(completions, prompts, **columns):
        return [1.0] * len(completions)

    model = _model({"name": "fine"}, {"name": "broken", "timeout_s": 5}, fine=fine, broken=broken)
    with pytest.raises(RewardError, match="reward 'broken' raised ZeroDivisionError: division by zero"):
        model(COMPLETIONS, PROMPTS, {})


def test_the_first_untimed_sync_reward_runs_on_the_calling_thread():
    # so rewards that time themselves out with SIGALRM (math-verify) keep working on the main thread
    seen = {}

    def record(name):
        def reward(completions, prompts, **columns):
            seen[name] = threading.current_thread() is threading.main_thread()
            return [0.0] * len(completions)

        return reward

    model = _model(
        {"name": "timed", "timeout_s": 30}, {"name": "first"}, {"name": "second"},
        timed=record("timed"), first=record("first"), second=record("second"),
    )  # fmt: skip
    model(COMPLETIONS, PROMPTS, {})
    assert seen == {"timed": False, "first": True, "second": False}


def test_timeout_must_be_positive():
    assert RewardConfig(name="task").timeout_s is None
    with pytest.raises(pydantic.ValidationError, match="timeout_s"):
        RewardConfig(name="task", timeout_s=0)


def test_trainer_logs_reward_timeouts_in_the_step_metrics(tiny_overrides):
    from grpozoo.config import resolve_config
    from grpozoo.training import Trainer

    release = threading.Event()

    def stuck(completions, prompts, **columns):
        release.wait(60)
        return [1.0] * len(completions)

    cfg = resolve_config(overrides=[*tiny_overrides, "rewards=[{name: task}, {name: stuck, timeout_s: 0.2}]"])
    trainer = Trainer(cfg, reward_functions={"stuck": stuck})
    try:
        with pytest.warns(RuntimeWarning, match="reward 'stuck' did not finish"):
            metrics = trainer.train_step()
    finally:
        release.set()
    batch_size = cfg.rollout.prompts_per_step * cfg.rollout.group_size
    assert metrics["reward/stuck/timeouts"] == batch_size
    assert math.isnan(metrics["reward/stuck"])  # no sample was scored
    assert "reward/task/timeouts" not in metrics  # a reward that cannot time out adds no column
