"""The defining properties of the hybrid objectives: GRAO (SFT on the demonstration plus
advantage-weighted likelihood and a pairwise push), SRPO (outcome routing between GRPO and
entropy-weighted self-distillation) and Reg-GRPO (advantage regression)."""

from __future__ import annotations

import torch
from factories import make_rollouts

from grpozoo.algos.aggregation import BatchTotals, sequence_mean
from grpozoo.algos.losses.clipped import ppo_clip_loss
from grpozoo.algos.losses.hybrid import distillation_weights, grao_loss, reg_grpo_loss, srpo_loss


def grao_batch(rewards: list[float]):
    """One group: three samples and, last, the demonstration (4 tokens each)."""
    b = len(rewards)
    return make_rollouts(rewards, num_tokens=4, demonstration=torch.arange(b) == b - 1)


def logp_of(batch, seed: int = 0) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return (-torch.rand(batch.completion_mask.shape, generator=gen) * 2).requires_grad_(True)


def grad_of(loss_fn, logp, batch, advantages, **params) -> torch.Tensor:
    mask = batch.completion_mask.float()
    loss, _ = loss_fn(logp, logp.detach(), advantages, mask, batch, **params)
    totals = BatchTotals.of(mask, mask.shape[1], batch.group_ids)
    (grad,) = torch.autograd.grad(sequence_mean(loss, mask, batch.group_ids, totals), logp)
    return grad


# --------------------------------------------------------------------------- GRAO


def test_grao_with_zero_advantages_and_no_alignment_is_sft_on_the_demonstration():
    batch = grao_batch([0.0, 1.0, 0.0, 1.0])
    logp = logp_of(batch)
    mask = batch.completion_mask.float()
    loss, _ = grao_loss(logp, logp.detach(), torch.zeros(4), mask, batch, imitation_coef=1.0, alignment_coef=0.0)
    assert torch.equal(loss[:3], torch.zeros(3, 4))  # no term on the samples
    assert torch.allclose(loss[3], -logp[3])  # the demonstration's negative log-likelihood
    grad = grad_of(grao_loss, logp, batch, torch.zeros(4), alignment_coef=0.0)
    sft = torch.zeros_like(grad)
    sft[3] = -1.0 / (4 * 4)  # d/dlogp of the mean over 4 sequences of the demonstration's mean NLL
    assert torch.allclose(grad, sft)


def test_grao_gradient_pushes_up_samples_with_positive_advantage():
    batch = grao_batch([1.0, 0.0, 0.0, 1.0])
    logp = logp_of(batch, seed=1)
    grad = grad_of(grao_loss, logp, batch, torch.tensor([1.5, -0.5, -1.0, 0.0]), alignment_coef=0.0)
    assert (grad[0] < 0).all()  # a descent step raises the positive sample's log-probs
    assert (grad[1:3] > 0).all()  # and lowers the negative ones'
    assert (grad[3] < 0).all()  # imitation raises the demonstration's


def test_grao_alignment_pushes_a_sample_that_outscores_the_demonstration_above_it():
    # sample 0 beats the demonstration's reward 0.5; samples 1 and 2 do not
    batch = grao_batch([1.0, 0.2, 0.5, 0.5])
    logp = logp_of(batch, seed=2)
    grad = grad_of(grao_loss, logp, batch, torch.zeros(4), imitation_coef=0.0, alignment_coef=1.0)
    assert (grad[0] < 0).all()  # raised above the demonstration
    assert (grad[3] > 0).all()  # the demonstration lowered relative to it
    assert torch.equal(grad[1:3], torch.zeros(2, 4))  # no pairwise term where the sample is not better


def test_grao_without_a_demonstration_in_the_group_has_no_imitation_or_alignment():
    batch = make_rollouts([1.0, 0.0, 0.5], num_tokens=3)  # no demonstration field at all
    logp = logp_of(batch)
    adv = torch.tensor([1.0, -1.0, 0.0])
    loss, diagnostics = grao_loss(logp, logp.detach(), adv, batch.completion_mask.float(), batch)
    assert torch.allclose(loss, -adv.unsqueeze(1) * logp)
    assert torch.equal(diagnostics["alignment_loss"], torch.zeros(3, 3))


# --------------------------------------------------------------------------- SRPO


def srpo_batch(scores: list[float], teacher_entropies: torch.Tensor | None = None, teacher_shift: float = 0.5):
    b, t = len(scores), 4
    sampling = -torch.linspace(0.2, 2.0, b * t).reshape(b, t)
    return make_rollouts(
        scores, num_tokens=t, sampling_logprobs=sampling, old_logprobs=sampling,
        teacher_logprobs=sampling + teacher_shift,
        teacher_entropies=teacher_entropies if teacher_entropies is not None else torch.full((b, t), 0.7),
    )


def test_srpo_correct_samples_get_no_distillation_and_failed_samples_no_policy_gradient():
    batch = srpo_batch([1.0, 0.0, 1.0, 0.0])
    mask = batch.completion_mask.float()
    gen = torch.Generator().manual_seed(3)
    logp = batch.old_logprobs + 0.1 * torch.randn(mask.shape, generator=gen)
    adv = torch.tensor([0.8, -0.8, 0.3, -0.3])
    loss, _ = srpo_loss(logp, batch.old_logprobs, adv, mask, batch)
    reference, _ = ppo_clip_loss(logp, batch.old_logprobs, adv, mask, batch)
    correct, failed = [0, 2], [1, 3]
    assert torch.allclose(loss[correct], reference[correct])  # GRPO's clipped surrogate, unchanged
    # the failed rows do not read their advantage; the correct rows do not read the teacher
    other_adv, _ = srpo_loss(logp, batch.old_logprobs, torch.tensor([0.8, 5.0, 0.3, -7.0]), mask, batch)
    assert torch.equal(other_adv[failed], loss[failed])
    batch.teacher_logprobs = batch.teacher_logprobs - 3.0
    other_teacher, _ = srpo_loss(logp, batch.old_logprobs, adv, mask, batch)
    assert torch.equal(other_teacher[correct], loss[correct])
    assert not torch.allclose(other_teacher[failed], loss[failed])


def test_srpo_distillation_on_policy_is_the_k1_estimate_and_pulls_toward_the_teacher():
    batch = srpo_batch([0.0, 0.0], teacher_shift=0.5)  # the teacher likes every sampled token more
    mask = batch.completion_mask.float()
    logp = batch.old_logprobs.clone().requires_grad_(True)
    loss, _ = srpo_loss(logp, batch.old_logprobs, torch.zeros(2), mask, batch, entropy_weighting=False)
    assert torch.allclose(loss, torch.full((2, 4), -0.5))  # λ·(log π_old − log π_T)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    assert (grad < 0).all()  # a descent step raises the tokens the teacher prefers


def test_srpo_a_high_entropy_teacher_token_gets_a_lower_weight():
    entropies = torch.tensor([[0.1, 2.0, 0.1, 2.0]])
    batch = srpo_batch([0.0], teacher_entropies=entropies)
    mask = batch.completion_mask.float()
    weights = distillation_weights(batch, mask)
    assert weights[0, 1] < weights[0, 0] and weights[0, 3] < weights[0, 2]
    assert torch.allclose(weights.mean(), torch.tensor(1.0))  # normalised over the completion
    logp = batch.old_logprobs.clone().requires_grad_(True)
    loss, _ = srpo_loss(logp, batch.old_logprobs, torch.zeros(1), mask, batch)
    (grad,) = torch.autograd.grad(loss.sum(), logp)
    # the same teacher log-ratio on every token: the confident tokens are pulled harder
    assert grad[0, 0].abs() > grad[0, 1].abs() and grad[0, 2].abs() > grad[0, 3].abs()


# --------------------------------------------------------------------------- Reg-GRPO


def test_reg_grpo_is_zero_when_psi_equals_the_advantage():
    # one group of three, d = (1.2, -1.2, 0): ψ = d / std(d) = (1.2247, -1.2247, 0) with population std
    batch = make_rollouts([1.0, 0.0, 0.5], num_tokens=2)
    old = torch.full((3, 2), -1.0)
    logp = old + torch.tensor([[0.6, 0.6], [-0.6, -0.6], [0.0, 0.0]])
    psi = torch.tensor([1.2, -1.2, 0.0]) / torch.tensor([1.2, -1.2, 0.0]).pow(2).mean().sqrt()
    loss, diagnostics = reg_grpo_loss(logp, old, psi, batch.completion_mask.float(), batch, eps=0.0)
    assert torch.allclose(loss, torch.zeros(3, 2), atol=1e-10)
    assert torch.allclose(diagnostics["regression_target_psi"][:, 0], psi)
    shifted, _ = reg_grpo_loss(logp, old, psi + torch.tensor([0.5, 0.0, -0.5]), batch.completion_mask.float(),
                               batch, eps=0.0)
    assert torch.allclose(shifted[:, 0], torch.tensor([0.25, 0.0, 0.25]))  # (Â − ψ)², no clip


def test_reg_grpo_gradient_raises_the_log_ratio_of_positive_advantage_samples():
    batch = make_rollouts([1.0, 0.0, 0.0, 1.0], group_ids=[0, 0, 1, 1], num_tokens=3)
    old = -torch.rand(4, 3, generator=torch.Generator().manual_seed(4))
    logp = old.clone().requires_grad_(True)  # on-policy: d = 0
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])
    grad = grad_of(reg_grpo_loss, logp, batch, adv)
    assert (grad[[0, 3]] < 0).all()  # descent raises d_i where Â_i > 0
    assert (grad[[1, 2]] > 0).all()
