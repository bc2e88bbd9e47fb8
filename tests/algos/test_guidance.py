"""Guided rollouts' decisions: stuck groups, hint levels (Scaf-GRPO tiers, GHPO prefixes), the
substitution of hinted successes (Scaf-GRPO, GHPO, Guide-GRPO) and Guide-GRPO's behaviour log-probs."""

from __future__ import annotations

import math

import pytest
import torch

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.guidance import (
    behaviour_logprobs,
    guidance_active,
    hint_levels,
    hinted_messages,
    prefix_length,
    stuck_groups,
    substitution,
)


def test_only_groups_without_a_success_are_stuck():
    scores = torch.tensor([0, 0, 0, 0, 0, 1, 0, 0, float("nan"), 0])
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
    assert stuck_groups(scores, groups).tolist() == [True] * 4 + [False] * 4 + [True] * 2
    assert (
        stuck_groups(torch.tensor([0.6, 0.2]), torch.tensor([0, 0]), success_threshold=0.5).tolist()
        == [False] * 2
    )


def test_a2_one_hinted_success_gives_exactly_one_one_and_nonzero_advantages():
    """Scaf-GRPO: rewards [0,0,0,0] plus a hinted success give a group with exactly one 1; the advantages
    are (1 − 0.25)/std for it and −0.25/std for the others."""
    rewards = torch.tensor([0.0, 0, 0, 0, 1.0, 0.0])  # four sampled, then two hinted (one success)
    groups = torch.tensor([0, 0, 0, 0, 0, 0])
    hinted = torch.tensor([False] * 4 + [True] * 2)
    stuck = stuck_groups(rewards.masked_fill(hinted, 0), groups) & ~hinted
    use = substitution(groups, hinted, rewards >= 1, stuck, max_replaced=1)
    assert use.tolist() == [True, True, True, False, True, False]  # the last failure is replaced
    mixed = rewards[use]
    assert mixed.tolist().count(1.0) == 1 and len(mixed) == 4
    adv = grpo_advantage(mixed, torch.zeros(4, dtype=torch.long))
    std = float(torch.tensor([0.0, 0, 0, 1]).std())  # 0.5: the advantages are −0.5 and 1.5
    assert adv.tolist() == pytest.approx([-0.25 / std, -0.25 / std, -0.25 / std, 0.75 / std], abs=1e-3)
    assert mixed.var() > 0  # the group now carries a learning signal


def test_a_group_with_any_success_is_unchanged():
    rewards = torch.tensor([0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0])  # group 0 solved, group 1 stuck
    groups = torch.tensor([0, 0, 1, 1, 1, 1, 1])
    hinted = torch.tensor([False] * 6 + [True])
    stuck = stuck_groups(torch.where(hinted, 0.0, rewards), groups) & ~hinted
    use = substitution(groups, hinted, rewards >= 1, stuck)
    assert use[:2].tolist() == [True, True]
    assert use.tolist() == [True, True, True, True, True, False, True]


def test_no_hinted_success_changes_nothing():
    groups = torch.tensor([0, 0, 0, 0])
    hinted = torch.tensor([False, False, True, True])
    use = substitution(groups, hinted, torch.zeros(4, dtype=torch.bool), ~hinted)
    assert use.tolist() == [True, True, False, False]


def test_replace_all_puts_successes_first_and_can_replace_the_whole_group():
    groups = torch.tensor([0] * 8)
    hinted = torch.tensor([False] * 4 + [True] * 4)
    success = torch.tensor([False] * 4 + [False, True, False, True])
    stuck = ~hinted
    part = substitution(groups, hinted, success, stuck, max_replaced=2, replace="all")
    assert part.tolist() == [True, True, False, False, False, True, False, True]
    whole = substitution(groups, hinted, success, stuck, max_replaced=None, replace="all")
    assert whole.tolist() == [False] * 4 + [True] * 4  # GHPO: the hinted group replaces the group
    with pytest.raises(ValueError, match="replace='some'"):
        substitution(groups, hinted, success, stuck, replace="some")


def test_scaf_tiers_in_order_and_ghpo_prefix_lengths():
    assert hint_levels(["concept", "", "plan", "steps"], "tiered_hints") == ["concept", "plan", "steps"]
    assert hint_levels("one hint", "tiered_hints") == ["one hint"]
    assert hint_levels(None, "tiered_hints") == [] and hint_levels([], "tiered_hints") == []
    # GHPO: hint length = ⌈ω·len(solution tokens)⌉, here one token per character
    solution = "abcdefghij"  # 10 tokens
    levels = hint_levels(solution, "solution_prefix", [0.25, 0.5, 0.75], list, "".join)
    assert [len(level) for level in levels] == [3, 5, 8]
    assert levels[0] == "abc" and all(solution.startswith(level) for level in levels)
    assert [prefix_length(7, w) for w in (0.25, 0.5, 0.75, 1.0)] == [2, 4, 6, 7]
    assert [prefix_length(8, w) for w in (0.25, 0.5)] == [2, 4]  # exact products are not rounded up
    with pytest.raises(ValueError, match="hints must be text"):
        hint_levels([1, 2], "tiered_hints")


def test_hint_goes_into_the_last_user_message_of_a_copy():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q?"}]
    out = hinted_messages(messages, "add them", "\n\nHint: {hint}")
    assert out[-1]["content"] == "Q?\n\nHint: add them"
    assert messages[-1]["content"] == "Q?"  # the task's messages are untouched


def test_guidance_free_opening():
    assert [guidance_active(s, 10, 0.2) for s in range(1, 5)] == [False, False, True, True]
    assert guidance_active(1, 10, 0.0)


def test_behaviour_logprobs_use_the_sampler_on_off_policy_rows():
    """Guide-GRPO: the ratio's denominator on a guided row is the hinted sampler's log-prob."""
    learner = torch.tensor([[-1.0, -2.0], [-1.5, -0.5]])
    sampler = torch.tensor([[-0.2, -0.3, 0.0], [-0.7, -0.9, 0.0]])  # wider, as before trimming
    out = behaviour_logprobs(learner, sampler, torch.tensor([False, True]))
    assert torch.equal(out, torch.tensor([[-1.0, -2.0], [-0.7, -0.9]]))
    assert behaviour_logprobs(learner, sampler, None) is learner
    # with an empty hint the sampler's log-probs are the learner's, and the ratio is exactly 1
    ratio = torch.exp(learner - behaviour_logprobs(learner, learner, torch.tensor([True, True])))
    assert torch.equal(ratio, torch.ones(2, 2))
    assert not math.isnan(float(out.sum()))
