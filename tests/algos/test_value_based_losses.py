"""B-Coder's value-based loss: the policy's log-probs as the advantage part of Q, regressed on a
conservative one-step Bellman target over a learned critic."""

import pytest
import torch
from factories import make_rollouts

from grpozoo.algos.losses.value_based import b_coder_bellman_loss


def batch(rewards, values, lengths, truncated=None):
    b = len(rewards)
    return make_rollouts(rewards, list(range(b)), lengths=lengths, num_tokens=max(lengths),
                         values=torch.tensor(values), truncated=torch.tensor(truncated or [False] * b))


def test_a_q_function_that_satisfies_the_bellman_target_has_no_loss_and_no_gradient():
    # reward 0, V falling 0.9 → 0.5 → 0.2 → 0 (end): TD errors δ = −0.4, −0.3, −0.2
    ctx = batch([0.0], [[0.9, 0.5, 0.2, 0.0]], [3])
    # α·logp_t = δ_t with α = 2: Q(s_t, a_t) = α·logp_t + V(s_t) equals the target r_t + V(s_{t+1})
    logp = torch.tensor([[-0.2, -0.15, -0.1]], requires_grad=True)
    loss, diagnostics = b_coder_bellman_loss(logp, logp.detach(), torch.zeros(1), ctx.completion_mask.float(), ctx,
                                             alpha=2.0)
    assert torch.allclose(loss, torch.zeros(1, 3), atol=1e-7)
    loss.sum().backward()
    assert torch.allclose(logp.grad, torch.zeros(1, 3), atol=1e-6)
    assert torch.allclose(diagnostics["bellman_residual"], torch.zeros(1, 3), atol=1e-7)


def test_the_next_state_is_valued_by_the_critic_and_the_reward_comes_at_the_end():
    ctx = batch([1.0, 1.0], [[0.2, 0.5, 0.9, 0.0, 0.0], [0.2, 0.5, 0.9, 0.7, 0.0]], [3, 3], [False, True])
    logp = torch.full((2, 3), -1.0, requires_grad=True)
    loss, diagnostics = b_coder_bellman_loss(logp, logp.detach(), torch.zeros(2), ctx.completion_mask.float(), ctx)
    residual = diagnostics["bellman_residual"]
    # Q − y = logp_t − (r_t + γ·V(s_{t+1}) − V(s_t))
    assert residual[0].tolist() == pytest.approx([-1 - 0.3, -1 - 0.4, -1 - (1 - 0.9)])
    # a truncated row bootstraps with V at the cut, and its reward is not used
    assert residual[1, 2] == pytest.approx(-1 - (0.7 - 0.9))
    assert float(loss[0, 0].detach()) == pytest.approx(0.5 * 1.3**2)
    loss.sum().backward()
    assert torch.allclose(logp.grad, residual)  # α = 1: d½(α·logp − δ)²/dlogp = α·(α·logp − δ)


def test_a_micro_batch_cut_short_reads_the_values_of_its_own_columns():
    ctx = batch([1.0, 0.0], [[0.2, 0.5, 0.0, 0.0, 0.0], [0.1, 0.3, 0.6, 0.8, 0.0]], [2, 4])
    logp = -torch.rand(2, 4, generator=torch.Generator().manual_seed(0))
    whole, _ = b_coder_bellman_loss(logp, logp, torch.zeros(2), ctx.completion_mask.float(), ctx)
    first = ctx.select([0])
    first.completion_mask = first.completion_mask[:, :2]  # the trainer trims a micro-batch to its longest row
    part, _ = b_coder_bellman_loss(logp[:1, :2], logp[:1, :2], torch.zeros(1), first.completion_mask.float(), first)
    assert torch.allclose(part, whole[:1, :2])
