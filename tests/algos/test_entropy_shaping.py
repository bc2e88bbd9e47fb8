"""GTPO's entropy filter on GRPO advantages, checked against hand-computed values."""

import torch
from factories import make_rollouts

from grpozoo.algos.advantages import AdvantageOutput
from grpozoo.algos.advantages.entropy_shaping import gtpo_advantage, mean_token_entropy
from grpozoo.algos.advantages.group_relative import grpo_advantage
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.registry import advantages


def _batch(rewards, entropies, lengths=None, group_ids=None):
    entropies = torch.as_tensor(entropies, dtype=torch.float32)
    return make_rollouts(
        rewards, group_ids=group_ids, lengths=lengths, num_tokens=entropies.shape[1], entropies=entropies
    )


def test_registered():
    assert advantages.get("gtpo") is gtpo_advantage


def test_mean_entropy_above_threshold_gives_zero_advantage_and_zero_loss():
    # rewards [1, 0] without std scaling: GRPO advantages +0.5, -0.5
    # row 0: H̄ = 0.5 <= 0.7 -> 0.5 - 0.1 * 0.5 = 0.45; row 1: H̄ = 0.8 > 0.7 -> 0
    ctx = _batch([1.0, 0.0], [[0.5, 0.5, 0.5, 0.5], [0.6, 1.0, 0.8, 0.8]])
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx, scale="none")
    assert isinstance(out, AdvantageOutput)
    torch.testing.assert_close(out.advantages, torch.tensor([0.45, 0.0]))
    # the filtered completion contributes nothing to the loss, whatever the ratio
    logp = torch.full((2, 4), 0.3, requires_grad=True)
    loss, _ = ppo_clip_loss(logp, torch.zeros(2, 4), out.advantages, ctx.completion_mask.float(), ctx)
    assert torch.equal(loss[1], torch.zeros(4))
    loss.sum().backward()
    assert torch.equal(logp.grad[1], torch.zeros(4))


def test_shift_below_threshold_by_hand_negative_side():
    # row 1 is negative and below the threshold: -0.5 - 0.1 * 0.3 = -0.53
    ctx = _batch([1.0, 0.0], [[0.9, 0.9, 0.9, 0.9], [0.3, 0.3, 0.3, 0.3]])
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx, scale="none")
    torch.testing.assert_close(out.advantages, torch.tensor([0.0, -0.53]))


def test_mean_entropy_uses_only_real_tokens():
    # row 0 has 2 real tokens [0.6, 0.2] -> H̄ = 0.4 (the padding value 9.0 is ignored): 0.5 - 0.04
    ctx = _batch([1.0, 0.0], [[0.6, 0.2, 9.0], [0.1, 0.1, 0.1]], lengths=[2, 3])
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx, scale="none")
    torch.testing.assert_close(out.advantages, torch.tensor([0.46, -0.51]))
    torch.testing.assert_close(out.extras["gtpo_mean_entropy"], torch.tensor([0.4, 0.1]))
    torch.testing.assert_close(out.extras["gtpo_unshaped_advantage"], torch.tensor([0.5, -0.5]))


def test_threshold_is_strict_and_parameters_apply():
    # H̄ = 0.5 with threshold 0.5 is kept (only H̄ > threshold is filtered); coef 1.0 shifts by 0.5
    ctx = _batch([1.0, 0.0], [[0.5] * 2, [0.5] * 2])
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx, scale="none", threshold=0.5, coef=1.0)
    torch.testing.assert_close(out.advantages, torch.tensor([0.0, -1.0]))


def test_all_equal_group_is_shifted_by_its_entropy():
    # GRPO gives 0 to a group of equal rewards; the repository still subtracts 0.1 * H̄
    ctx = _batch([1.0, 1.0], [[0.2, 0.2], [0.4, 0.4]])
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx)
    torch.testing.assert_close(out.advantages, torch.tensor([-0.02, -0.04]))


def test_coincides_with_grpo_without_shaping():
    torch.manual_seed(0)
    ctx = _batch([1.0, 0.0, 0.0, 1.0, 0.5, 2.0], torch.rand(6, 5) * 3, group_ids=[0, 0, 0, 1, 1, 1])
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx, threshold=float("inf"), coef=0.0)
    torch.testing.assert_close(out.advantages, grpo_advantage(ctx.rewards, ctx.group_ids))


def test_empty_rows_and_single_member_groups_are_finite():
    ctx = _batch(
        [1.0, 0.0, 3.0], [[0.5, 0.5], [0.5, 0.5], [0.5, 0.5]], lengths=[0, 2, 0], group_ids=[0, 0, 1]
    )
    out = gtpo_advantage(ctx.rewards, ctx.group_ids, ctx)
    assert torch.isfinite(out.advantages).all()
    # the empty row has H̄ = 0: its GRPO advantage is unchanged; the single-member group stays 0
    base = grpo_advantage(ctx.rewards, ctx.group_ids)
    torch.testing.assert_close(out.advantages[0], base[0])
    assert out.advantages[2].item() == 0.0
    torch.testing.assert_close(
        mean_token_entropy(ctx.entropies, ctx.completion_mask), torch.tensor([0.0, 0.5, 0.0])
    )
