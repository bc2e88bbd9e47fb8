"""ADORA's dynamic advantage weighting (Ren et al. 2026, arXiv:2602.10019)."""

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.advantages.prompt_weighting import adora_advantage


def _two_groups():
    # group 0: right rollouts (lengths 6, 5) longer than wrong ones (2, 3) -> advantageous
    # group 1: right rollouts (2, 3) shorter than wrong ones (6, 5) -> disadvantageous
    return make_rollouts([1, 1, 0, 0, 1, 1, 0, 0], [0, 0, 0, 0, 1, 1, 1, 1], lengths=[6, 5, 2, 3, 2, 3, 6, 5])


def test_adora_false_predicate_scales_the_whole_group_and_true_leaves_it():
    batch = _two_groups()
    base = grpo_advantage(batch.rewards, batch.group_ids)
    adv = adora_advantage(batch.rewards, batch.group_ids, batch, factor=0.1)
    assert torch.equal(adv[:4], base[:4])
    assert torch.allclose(adv[4:], 0.1 * base[4:])
    assert (adv[4:] != 0).all()


def test_adora_never_flips_a_sign():
    batch = _two_groups()
    base = grpo_advantage(batch.rewards, batch.group_ids)
    for factor in (0.0, 0.1, 0.5, 1.0, 3.0):
        adv = adora_advantage(batch.rewards, batch.group_ids, batch, factor=factor)
        assert (adv * base >= 0).all()
    with pytest.raises(ValueError, match="sign"):
        adora_advantage(batch.rewards, batch.group_ids, batch, factor=-0.5)


def test_adora_predicate_is_pluggable():
    batch = _two_groups()
    base = grpo_advantage(batch.rewards, batch.group_ids)
    shorter = adora_advantage(batch.rewards, batch.group_ids, batch, predicate="correct_shorter", factor=0.2)
    assert torch.allclose(shorter[:4], 0.2 * base[:4]) and torch.equal(shorter[4:], base[4:])

    def only_group_one(rewards, group_ids, ctx, correct):
        return group_ids == 1

    custom = adora_advantage(batch.rewards, batch.group_ids, batch, predicate=only_group_one, factor=0.5)
    assert torch.allclose(custom[:4], 0.5 * base[:4]) and torch.equal(custom[4:], base[4:])


def test_adora_group_without_both_classes_is_kept():
    batch = make_rollouts([1.0, 0.5, 0.7], [0, 0, 0], lengths=[1, 4, 2])  # threshold 0.5: all right
    base = grpo_advantage(batch.rewards, batch.group_ids)
    assert torch.equal(adora_advantage(batch.rewards, batch.group_ids, batch), base)
