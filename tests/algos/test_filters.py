"""Group filters: DAPO dynamic sampling (a tolerance, not float equality), overlong filtering, the
D³S maximum-variance rollout subset and its schedule; Rollouts.concat."""

from __future__ import annotations

import itertools

import pytest
import torch
from factories import make_rollouts

from grpozoo import registry
from grpozoo.algos.filters import (
    AFTER_ADVANTAGES,
    BEFORE_ADVANTAGES,
    check_keep,
    d3s_rollouts,
    dynamic_sampling,
    first_groups,
    max_variance_subset,
    no_signal_message,
    overlong_filter,
)
from grpozoo.rollouts import Rollouts


def test_filters_are_registered_with_their_attributes():
    assert set(registry.group_filters.names()) >= {"dynamic_sampling", "overlong_filter", "d3s_rollouts"}
    assert registry.group_filters.spec("dynamic_sampling").refill is True
    assert not getattr(registry.group_filters.get("d3s_rollouts"), "refill", False)


# ------------------------------------------------------------------ dynamic sampling


def test_dynamic_sampling_drops_groups_without_reward_spread():
    # group 0 all-fail, group 1 all-pass, group 2 mixed, group 3 equal up to float noise
    rewards = [0, 0, 0, 1, 1, 1, 0, 1, 0, 0.3, 0.1 + 0.2, 0.3]
    batch = make_rollouts(rewards, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3])
    assert 0.1 + 0.2 != 0.3  # an exact comparison would keep group 3
    keep = dynamic_sampling(batch)
    assert keep.tolist() == [False] * 6 + [True] * 3 + [False] * 3


@pytest.mark.parametrize("spread", ["range", "std"])
def test_dynamic_sampling_tolerance_is_a_threshold_on_the_spread(spread):
    batch = make_rollouts([0.0, 0.05, 0.0, 0.5], [0, 0, 1, 1])
    width = {"range": [0.05, 0.5], "std": [0.05 / 2**0.5, 0.5 / 2**0.5]}[spread]
    assert dynamic_sampling(batch, tol=width[0] - 1e-4, spread=spread).tolist() == [True] * 4
    assert dynamic_sampling(batch, tol=width[0] + 1e-4, spread=spread).tolist() == [False, False, True, True]
    assert dynamic_sampling(batch, tol=width[1] + 1e-4, spread=spread).tolist() == [False] * 4


def test_dynamic_sampling_on_task_scores_ignores_reward_shaping():
    # same accuracy in the group, rewards differ by a length penalty
    batch = make_rollouts([1.0, 0.8], [0, 0], task_scores=torch.tensor([1.0, 1.0]))
    assert dynamic_sampling(batch).tolist() == [True, True]
    assert dynamic_sampling(batch, on="task_score").tolist() == [False, False]


def test_dynamic_sampling_edge_cases():
    single = make_rollouts([1.0, 0.0], [0, 1])  # one-row groups have no spread
    assert dynamic_sampling(single).tolist() == [False, False]
    empty = make_rollouts([], [], num_tokens=4)
    assert dynamic_sampling(empty).shape == (0,)
    with pytest.raises(ValueError, match="tol must be >= 0"):
        dynamic_sampling(single, tol=-1)
    with pytest.raises(ValueError, match="spread='var'"):
        dynamic_sampling(single, spread="var")


def test_no_signal_message_names_the_remedy():
    text = no_signal_message(["dynamic_sampling"], 4, 8, 4, 0.0, 3)
    assert "every group had the same reward for 4 round(s)" in text
    assert "mean reward 0.000" in text
    for remedy in ("difficulty", "rollout.group_size", "rollout.max_refill_rounds (now 3)"):
        assert remedy in text


def test_first_groups_keeps_the_first_n_surviving_groups():
    group_ids = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    keep = torch.tensor([False, False, True, True, True, False, True, True])
    assert first_groups(group_ids, keep, 2).tolist() == [False, False, True, True, True, False, False, False]
    assert first_groups(group_ids, keep, 5).tolist() == keep.tolist()


# ------------------------------------------------------------------ overlong filter


def test_overlong_filter_keeps_finished_completions_and_picks_its_stage():
    batch = make_rollouts([1, 0, 1], [0, 0, 0], truncated=torch.tensor([False, True, False]))
    assert overlong_filter(batch).tolist() == [True, False, True]
    assert registry.group_filters.spec("overlong_filter").stage_for({}) == AFTER_ADVANTAGES  # DAPO: in the statistics, no loss
    assert registry.group_filters.spec("overlong_filter").stage_for({"mode": "drop"}) == BEFORE_ADVANTAGES
    with pytest.raises(ValueError, match="mode='cut'"):
        overlong_filter(batch, mode="cut")


def test_check_keep_names_the_filter():
    with pytest.raises(ValueError, match="group filter 'mine' returned"):
        check_keep("mine", torch.ones(3), 3)
    with pytest.raises(ValueError, match=r"shape \(3,\)"):
        check_keep("mine", torch.ones(2, dtype=torch.bool), 3)


# ------------------------------------------------------------------ D³S rollout subset


def test_d3s_binary_rewards_keep_both_successes_and_two_failures():
    """D³S's example: rewards [1,0,0,0,0,0,1,0], k=4 selects both ones and two zeros."""
    rewards = torch.tensor([1.0, 0, 0, 0, 0, 0, 1, 0])
    keep = max_variance_subset(rewards, 4)
    assert keep.sum() == 4
    assert rewards[keep].tolist().count(1.0) == 2 and rewards[keep].tolist().count(0.0) == 2
    assert rewards[keep].var(unbiased=False) == pytest.approx(0.25)


@pytest.mark.parametrize("seed", range(6))
def test_d3s_subset_variance_is_at_least_every_other_subset(seed):
    """D³S's defining property: brute force over every size-k subset of G ≤ 8."""
    g = torch.Generator().manual_seed(seed)
    size = 5 + seed % 4
    values = (
        torch.randint(0, 4, (size,), generator=g).double()
        if seed % 2
        else torch.rand(size, generator=g).double()
    )
    for k in range(1, size + 1):
        chosen = values[max_variance_subset(values, k)].var(unbiased=False)
        best = max(values[list(c)].var(unbiased=False) for c in itertools.combinations(range(size), k))
        assert chosen >= best - 1e-12, (values.tolist(), k)


def test_d3s_rollouts_follow_the_schedule_and_ratio_one_is_a_no_op():
    rewards = [1, 0, 0, 0, 0, 0, 1, 0] * 2
    group_ids = [0] * 8 + [1] * 8
    first = make_rollouts(rewards, group_ids, step=1, total_steps=11)
    keep = d3s_rollouts(first, ratio_start=0.5, ratio_end=1.0)
    assert keep[:8].sum() == 4 and keep[8:].sum() == 4  # k = ⌈0.5·8⌉ at the first step
    middle = make_rollouts(rewards, group_ids, step=6, total_steps=11)
    assert d3s_rollouts(middle, ratio_start=0.5, ratio_end=1.0)[:8].sum() == 6  # ρ = 0.75
    last = make_rollouts(rewards, group_ids, step=11, total_steps=11)
    assert d3s_rollouts(last, ratio_start=0.5, ratio_end=1.0).all()  # ρ = 1: nothing dropped
    assert d3s_rollouts(first, ratio_start=1.0, ratio_end=1.0).all()


def test_d3s_rollouts_keep_at_least_min_keep_and_small_groups_whole():
    batch = make_rollouts([1, 0, 0, 0, 5], [0, 0, 0, 0, 1])
    keep = d3s_rollouts(batch, ratio_start=0.1, ratio_end=0.1)
    assert keep[:4].sum() == 2 and bool(keep[0])  # the success and one failure
    assert bool(keep[4])  # a one-row group is kept whole
    with pytest.raises(ValueError, match="ratio_start must lie in"):
        d3s_rollouts(batch, ratio_start=0.0)


def test_d3s_rollouts_rank_by_advantages_when_they_are_set():
    batch = make_rollouts([0, 0, 0, 0], [0, 0, 0, 0], advantages=torch.tensor([2.0, 0.0, 0.1, -2.0]))
    assert d3s_rollouts(batch, ratio_start=0.5, ratio_end=0.5).tolist() == [True, False, False, True]
    assert registry.group_filters.spec("d3s_rollouts").stage_for({"advantages_on": "group"}) == AFTER_ADVANTAGES
    assert registry.group_filters.spec("d3s_rollouts").stage_for({}) == BEFORE_ADVANTAGES


def test_d3s_rollouts_on_a_batch_without_rewards_names_what_it_ranks_by():
    batch = make_rollouts([0, 1, 0, 1], [0, 0, 0, 0])
    batch.rewards = None
    with pytest.raises(ValueError, match="batch.advantages .B. or batch.rewards"):
        d3s_rollouts(batch)


# ------------------------------------------------------------------ Rollouts.concat


def test_concat_pads_and_keeps_group_ids_distinct():
    a = make_rollouts([0.0, 1.0], [0, 0], lengths=[2, 3])
    b = make_rollouts(
        [1.0, 1.0, 0.0],
        [0, 0, 1],
        lengths=[5, 1, 2],
        prompt_ids=torch.full((3, 4), 7),
        prompt_mask=torch.tensor([[0, 1, 1, 1]] * 3),
        hint_level=torch.tensor([1, 1, 2]),
    )
    a.reward_parts = {"task": a.rewards.clone()}
    b.reward_parts = {"task": b.rewards.clone()}
    out = Rollouts.concat([a, b])
    assert out.batch_size == 5
    assert out.group_ids.tolist() == [0, 0, 1, 1, 2]
    assert out.completion_mask.shape == (5, 5) and out.completion_lengths.tolist() == [2, 3, 5, 1, 2]
    # prompts are left-padded: the short prompts of a gain two masked columns on the left
    assert out.prompt_mask[0].tolist() == [0, 0, 1, 1] and out.prompt_ids[0, 2:].tolist() == [1, 1]
    assert out.rewards.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0]
    assert out.reward_parts["task"].tolist() == out.rewards.tolist()
    assert out.hint_level.tolist() == [0, 0, 1, 1, 2]  # filled where unset
    assert out.off_policy is None and out.old_logprobs is None
    assert out.completions == a.completions + b.completions
    assert Rollouts.concat([a, b], renumber_groups=False).group_ids.tolist() == [0, 0, 0, 0, 1]


def test_concat_refuses_a_field_set_in_only_some_batches():
    a = make_rollouts([0.0], [0])
    b = make_rollouts([1.0], [0], old_logprobs=torch.zeros(1, 4))
    with pytest.raises(ValueError, match="'old_logprobs' is set in some batches"):
        Rollouts.concat([a, b])
