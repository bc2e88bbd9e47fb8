"""Splitting a step's batch into micro-batches never changes the gradient, for every registered
policy loss under every registered aggregation, through the trainer's own ``learn``: old log-probs
that differ from the policy's exercise the statistics of the ratio, and a second optimiser iteration
those of the current policy's log-probs."""

from __future__ import annotations

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo import registry
from grpozoo.training.forward import micro_batches

# parameters that make a loss's batch statistics matter on a tiny batch (every token a Clip-Cov
# candidate, DHPO's entropy-weighted mix) or leave sequences inside GSPO's clip range
LOSS_PARAMS = {
    "clip_cov": ["algorithm.loss.params.cov_low=-100.0"],
    "dhpo": ["algorithm.loss.params.mix=entropy"],
    "gspo": ["algorithm.loss.params.eps_low=0.1", "algorithm.loss.params.eps_high=0.1"],
    "gspo_token": ["algorithm.loss.params.eps_low=0.1", "algorithm.loss.params.eps_high=0.1"],
}
# the copo loss reads the copo estimator's extras; B-Coder's critic trains on POAD's targets
ESTIMATOR = {"copo": "copo", "b_coder_bellman": "poad"}
R2VPO_LAMBDA = 2.0  # a penalty in force, so R²VPO's mean ratio matters
POLICY_STATISTICS = ["clip_cov", "grpo_guard", "kl_cov", "r2vpo"]  # their statistics read the current log-probs


def loss_trainer(overrides: list[str], loss: str, num_iterations: int):
    """Full fine-tuning of the tiny model with ``loss``, micro-batches of single rows unless the loss
    needs whole groups, and a learning rate too small to move a weight, so that every ``learn`` on a
    batch starts from the same policy."""
    return make_trainer(
        overrides,
        f"algorithm.advantage.name={ESTIMATOR.get(loss, 'grpo')}",
        f"algorithm.loss.name={loss}",
        *LOSS_PARAMS.get(loss, []),
        f"algorithm.num_iterations={num_iterations}",
        "model.lora.enabled=false",
        "rollout.prompts_per_step=2",
        "rollout.group_size=2",
        "rollout.max_new_tokens=8",
        "train.learning_rate=1e-30",
        "train.max_grad_norm=1e9",
        "train.shared_prefix=false",
    )


@pytest.fixture(scope="module")
def sampled() -> dict:
    """The module's one sampled batch, kept once the first test has drawn it."""
    return {}


def learning_batch(trainer, sampled: dict):
    """The module's sampled batch, prepared as a step prepares it, with rewards giving signal in
    every group, old log-probs off the policy's (as after an update), entropies that vary from token
    to token and from row to row (a random tiny model's are all near log V) and a subsentence every
    two tokens."""
    if "batch" not in sampled:
        torch.manual_seed(0)
        rollouts = trainer.rollouts
        sampled["batch"] = rollouts.generate(rollouts.selector.next(trainer.cfg.rollout.prompts_per_step), trainer.step)
        rollouts.score(sampled["batch"])
        sampled["batch"].rewards = torch.rand(sampled["batch"].batch_size)
    batch = sampled["batch"].select(slice(None))  # a copy: preparing fills its fields
    trainer.rollouts.providers.provide(batch)  # the rollout side's on-demand fields, as collect fills them
    learning = trainer.learner.prepare(batch)
    old = learning.old_logprobs if learning.old_logprobs is not None else learning.sampling_logprobs
    gen = torch.Generator().manual_seed(1)
    learning.old_logprobs = old + 0.3 * torch.randn(old.shape, generator=gen) * learning.completion_mask
    row_scale = torch.linspace(0.5, 4.0, old.shape[0]).unsqueeze(1)
    learning.entropies = row_scale * torch.rand(old.shape, generator=gen) * learning.completion_mask
    learning.completion_token_texts = [
        ["a", "."] * (len(texts) // 2) + ["a"] * (len(texts) % 2) for texts in learning.completion_token_texts
    ]
    return learning


def learn_gradients(trainer, batch, token_budget: int) -> dict[str, torch.Tensor]:
    """The gradients of the last optimiser iteration of ``trainer.learner.learn`` on ``batch`` with
    micro-batches of at most ``token_budget`` tokens."""
    trainer.cfg.train.micro_batch_tokens = token_budget
    trainer.state["r2vpo"] = {"lambda": R2VPO_LAMBDA}
    trainer.learner.learn(batch)
    return {n: p.grad.clone() for n, p in trainer.model.named_parameters() if p.grad is not None}


def split_changes_gradients(trainer, batch) -> bool:
    """Whether ``learn`` with one micro-batch and with one per group (or row) gives other gradients."""
    longest = int((batch.prompt_mask.sum(1) + batch.completion_mask.sum(1)).max())
    assert len(micro_batches(batch, longest, trainer.learner.whole_groups)) >= 2
    whole = learn_gradients(trainer, batch, token_budget=100_000)
    assert any(g.abs().sum() > 0 for g in whole.values()), "no gradient at all"
    split = learn_gradients(trainer, batch, token_budget=longest)
    # float sums in another order: differences far below the gradient's own scale
    return any((split[n] - whole[n]).abs().max() > 1e-4 * whole[n].abs().max() + 1e-7 for n in whole)


@pytest.mark.parametrize("loss", registry.losses.names())
def test_no_loss_under_any_aggregation_depends_on_the_micro_batch_split(tiny_overrides, sampled, loss):
    trainer = loss_trainer(tiny_overrides, loss, num_iterations=1)
    batch = learning_batch(trainer, sampled)
    changed = []
    for aggregation in registry.aggregations.names():
        trainer.cfg.algorithm.aggregation = aggregation
        trainer.learner.aggregate = registry.aggregations.get(aggregation)
        if split_changes_gradients(trainer, batch):
            changed.append(aggregation)
    assert not changed, f"{loss}: the micro-batch split changes the gradient under {changed}"


@pytest.mark.parametrize("loss", POLICY_STATISTICS)
def test_statistics_of_the_moved_policy_do_not_depend_on_the_micro_batch_split(tiny_overrides, sampled, loss):
    # the second iteration's statistics come from a forward of the policy, not from the old log-probs
    trainer = loss_trainer(tiny_overrides, loss, num_iterations=2)
    assert not split_changes_gradients(trainer, learning_batch(trainer, sampled))
