"""The KL regulariser inside the trainer: the adaptive coefficient follows its controller, the
straight-through estimator keeps the value and swaps the gradient for k2's, and ``mode="loss"``
adds exactly ``coef · aggregated KL`` to the loss.

Full fine-tuning, so the reference is a frozen copy of the policy; the policy is then perturbed,
so the two differ and the KL is not 0.
"""

from __future__ import annotations

import pytest
import torch
from training.test_trainer import make_trainer, sampled_batch

from grpozoo import registry
from grpozoo.algos.aggregation import BatchTotals
from grpozoo.algos.controllers import adaptive_kl_coef
from grpozoo.algos.kl import kl_k3
from grpozoo.training.forward import completion_logprobs, micro_batches
from tests.factories import make_rollouts

KL = ["model.lora.enabled=false", "algorithm.kl.estimator=k3", "algorithm.kl.mode=loss"]


def perturb(model, scale: float = 0.05, seed: int = 0) -> None:
    """Move every trainable weight by Gaussian noise, so the policy leaves its reference."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(scale * torch.randn(p.shape, generator=gen, dtype=p.dtype))


def kl_trainer(overrides: list[str], *extra: str):
    trainer = make_trainer(overrides, *KL, *extra)
    assert trainer.learner.reference is not None, "full fine-tuning keeps a frozen copy as the reference"
    perturb(trainer.model)
    return trainer


def fixed_batch(trainer):
    """A sampled batch with signal in every group and the reference log-probs filled in."""
    batch = sampled_batch(trainer)
    batch.rewards = torch.arange(batch.batch_size, dtype=torch.float32)
    batch.advantages = trainer.learner.components.advantage_fn(batch.rewards, batch.group_ids, batch)
    trainer.rollouts.providers.provide(batch)
    trainer.learner.providers.provide(batch)
    assert batch.ref_logprobs is not None
    return batch


def loss_and_gradients(trainer, batch) -> tuple[dict[str, float], dict[str, torch.Tensor]]:
    """``accumulate_gradients`` on ``batch`` (fresh gradients): its sums and the gradients."""
    trainer.model.zero_grad(set_to_none=True)
    chunks = [mb for _, mb in micro_batches(batch, 10_000, trainer.learner.whole_groups)]
    totals = BatchTotals.of(batch.completion_mask, trainer.cfg.rollout.max_new_tokens, batch.group_ids)
    sums = trainer.learner.accumulate_gradients(chunks, totals)
    grads = {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}
    assert grads, "no gradient at all"
    return dict(sums), grads


def independent_kl(trainer, batch) -> torch.Tensor:
    """k3 per token ``[B, T]`` (0 on padding), from forwards of the policy and of the reference."""
    temperature = trainer.cfg.rollout.temperature
    with torch.no_grad():
        policy, _ = completion_logprobs(trainer.model, batch, temperature)
        reference, _ = completion_logprobs(trainer.learner.reference, batch, temperature)
    torch.testing.assert_close(reference, batch.ref_logprobs, rtol=1e-4, atol=1e-4)
    return kl_k3(policy, reference) * batch.completion_mask


def test_adaptive_kl_coefficient_follows_the_controller_on_the_measured_kl(tiny_overrides):
    trainer = kl_trainer(tiny_overrides, "algorithm.kl.coef=0.2", "algorithm.kl.target=1e-6",
                         "algorithm.kl.horizon=4")
    # the measured KL is far above a tiny target: the coefficient grows
    metrics = trainer.train_step()
    assert metrics["kl"] > 1e-4, metrics["kl"]
    expected = adaptive_kl_coef(0.2, metrics["kl"], 1e-6, 4)
    assert expected > 0.2
    assert trainer.state["kl_coef"] == pytest.approx(expected, rel=1e-12)
    assert metrics["kl_coef"] == trainer.state["kl_coef"]
    # far below a large target: it shrinks, from where it stands now
    trainer.cfg.algorithm.kl.target = 100.0
    before = trainer.state["kl_coef"]
    metrics = trainer.train_step()
    expected = adaptive_kl_coef(before, metrics["kl"], 100.0, 4)
    assert expected < before
    assert trainer.state["kl_coef"] == pytest.approx(expected, rel=1e-12)
    assert metrics["kl_coef"] == trainer.state["kl_coef"]


def test_a_fixed_kl_coefficient_does_not_move(tiny_overrides):
    trainer = kl_trainer(tiny_overrides, "algorithm.kl.coef=0.2")
    metrics = trainer.train_step()
    assert metrics["kl"] > 1e-4
    assert trainer.state["kl_coef"] == 0.2 and metrics["kl_coef"] == 0.2


def test_straight_through_keeps_the_value_and_takes_k2s_gradient(tiny_overrides):
    trainer = kl_trainer(tiny_overrides, "algorithm.kl.coef=1.0")
    batch = fixed_batch(trainer)
    plain_sums, plain = loss_and_gradients(trainer, batch)
    trainer.cfg.algorithm.kl.straight_through = True
    st_sums, st = loss_and_gradients(trainer, batch)
    # the same forward value: loss and logged KL
    assert plain_sums["kl"] > 1e-4
    assert st_sums["loss"] == pytest.approx(plain_sums["loss"], rel=1e-5, abs=1e-6)
    assert st_sums["kl"] == pytest.approx(plain_sums["kl"], rel=1e-5, abs=1e-6)
    # a different gradient: k2's, which is what the plain k2 estimator gives
    assert any(not torch.allclose(st[n], plain[n], rtol=1e-3, atol=1e-6) for n in plain)
    trainer.cfg.algorithm.kl.straight_through = False
    trainer.learner.kl_fn = registry.kl_estimators.get("k2")
    k2_sums, k2 = loss_and_gradients(trainer, batch)
    assert k2_sums["kl"] != pytest.approx(plain_sums["kl"], rel=1e-3)  # k2's value is not k3's
    for name in k2:
        torch.testing.assert_close(st[name], k2[name], rtol=1e-4, atol=1e-6, msg=name)


def test_a_straight_through_run_logs_the_plain_kl(tiny_overrides):
    trainer = kl_trainer(tiny_overrides, "algorithm.kl.coef=0.5", "algorithm.kl.straight_through=true")
    batch = fixed_batch(trainer)
    kl = independent_kl(trainer, batch)
    sums, _ = loss_and_gradients(trainer, batch)
    assert sums["kl"] / float(batch.completion_mask.sum()) == pytest.approx(
        float(kl.sum() / batch.completion_mask.sum()), rel=1e-3
    )
    metrics = trainer.train_step()
    assert torch.isfinite(torch.tensor([metrics["kl"], metrics["loss"], metrics["grad_norm"]])).all()
    assert metrics["kl"] > 1e-4


@pytest.mark.parametrize("aggregation", ["token_mean", "sequence_mean"])
def test_kl_in_the_loss_adds_coef_times_the_aggregated_kl(tiny_overrides, aggregation):
    trainer = kl_trainer(tiny_overrides, "algorithm.kl.coef=0.5", f"algorithm.aggregation={aggregation}")
    batch = fixed_batch(trainer)
    kl = independent_kl(trainer, batch)
    mask = batch.completion_mask.float()
    totals = BatchTotals.of(batch.completion_mask, trainer.cfg.rollout.max_new_tokens, batch.group_ids)
    aggregated = float(registry.aggregations.get(aggregation)(kl, mask, batch.group_ids, totals))
    assert aggregated > 1e-3, "the policy should differ from its reference"
    losses = {}
    for coef in (0.0, 0.5, 2.0):
        trainer.state["kl_coef"] = coef
        sums, _ = loss_and_gradients(trainer, batch)
        losses[coef] = sums["loss"]
        assert sums["kl"] == pytest.approx(float(kl.sum()), rel=1e-3)  # logged whatever the coefficient
    for coef in (0.5, 2.0):
        assert losses[coef] - losses[0.0] == pytest.approx(coef * aggregated, rel=1e-3, abs=1e-6)
    # folded into the reward instead, the KL leaves the loss alone
    trainer.cfg.algorithm.kl.mode = "reward"
    trainer.state["kl_coef"] = 2.0
    sums, _ = loss_and_gradients(trainer, batch)
    assert sums["loss"] == pytest.approx(losses[0.0], rel=1e-6, abs=1e-7)


@pytest.mark.parametrize("recipe", ["reinforce_pp", "reinforce_pp_baseline", "rloo", "remax"])
def test_a_kl_folded_into_the_reward_is_in_the_reward_the_estimator_sees(tiny_overrides, recipe):
    # four one-token completions, rewards [1, 0, 0, 0], k1 KL [2, 0, 0, 0], β = 0.5: every return is
    # 0, so every advantage is 0 (subtracting the KL after whitening left the first at 0.73)
    trainer = make_trainer(
        tiny_overrides, f"recipe={recipe}", "algorithm.kl.coef=0.5", "algorithm.kl.estimator=k1",
        "algorithm.kl.mode=reward",
    )
    assert trainer.cfg.algorithm.advantage.name == recipe
    batch = make_rollouts(
        [1.0, 0.0, 0.0, 0.0], num_tokens=1,
        sampling_logprobs=torch.full((4, 1), -1.0),
        ref_logprobs=torch.tensor([[-3.0], [-1.0], [-1.0], [-1.0]]),
        baseline_rewards=torch.zeros(4),
    )
    learning = trainer.learner.advantages(batch)
    assert torch.equal(learning.advantages, torch.zeros_like(learning.advantages)), learning.advantages
    # with the KL in the loss instead, the reward alone decides
    trainer.cfg.algorithm.kl.mode = "loss"
    assert trainer.learner.advantages(batch).advantages.abs().sum() >= 1.0
