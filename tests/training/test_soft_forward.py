"""The learning forward of soft-thinking rollouts (Zheng and Lee 2025, "SofT-GRPO", arXiv:2511.06411):
on-policy it gives the sampler's log-probs at soft and discrete positions alike (ratio 1); the soft
positions read the recorded mixtures, not the Gumbel-max tokens; a batch without soft steps gets the
plain forward; gradients flow through the soft steps' Gumbel densities and one update moves them."""

from __future__ import annotations

import dataclasses

import torch
from training.test_trainer import make_trainer

from grpozoo.generation.soft_engine import SoftThinkingGenerator
from grpozoo.generation.soft_thinking import soft_step_log_ratio
from grpozoo.training.forward import completion_logprobs
from grpozoo.training.soft_forward import soft_completion_logprobs


def soft_run(tiny_overrides, *extra):
    trainer = make_trainer(tiny_overrides, "recipe=soft_grpo", "rollout.soft_thinking.tokens=3",
                           "rollout.soft_thinking.top_k=5", "rollout.soft_thinking.tau=0.5",
                           "rollout.max_new_tokens=7", "rollout.temperature=0.8", *extra)
    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)
    return trainer, batch


def test_on_policy_the_learner_scores_soft_steps_as_the_sampler_did(tiny_overrides):
    trainer, batch = soft_run(tiny_overrides, "model.lora.enabled=false")
    assert isinstance(trainer.engine, SoftThinkingGenerator)
    assert trainer.learner.forward is soft_completion_logprobs
    model, temperature = trainer.model, trainer.cfg.rollout.temperature
    assert batch.soft_mask is not None
    soft = batch.soft_mask.bool()
    discrete = batch.completion_mask.bool() & ~soft
    assert soft.sum() == 3 * batch.batch_size and discrete.any()
    with torch.no_grad():
        logp, entropy = soft_completion_logprobs(model, batch, temperature, with_entropy=True)
        plain, _ = completion_logprobs(model, batch, temperature)
    # ratio 1 on every token: the soft steps' Gumbel densities and the discrete tokens after them
    torch.testing.assert_close(logp[soft], batch.sampling_logprobs[soft], atol=1e-5, rtol=0)
    torch.testing.assert_close(logp[discrete], batch.sampling_logprobs[discrete], atol=1e-5, rtol=0)
    assert entropy is not None
    torch.testing.assert_close(entropy[soft], batch.entropies[soft], atol=1e-5, rtol=0)
    # the plain forward reads the Gumbel-max tokens instead of the mixtures: the contexts differ
    assert (plain[discrete] - batch.sampling_logprobs[discrete]).abs().max() > 1e-3
    # the same batch without soft steps: the plain forward exactly
    no_soft = dataclasses.replace(batch, soft_mask=torch.zeros_like(batch.soft_mask))
    with torch.no_grad():
        same, _ = soft_completion_logprobs(model, no_soft, temperature)
    assert torch.equal(same, plain)


def test_a_training_step_moves_the_soft_steps_log_ratio_through_their_gradient(tiny_overrides):
    trainer, batch = soft_run(tiny_overrides, "train.learning_rate=0.05")
    learner, model, temperature = trainer.learner, trainer.model, trainer.cfg.rollout.temperature
    soft = batch.soft_mask.bool()
    # gradients reach the trainable weights from the soft positions' log-densities alone
    model.zero_grad(set_to_none=True)
    logp, _ = soft_completion_logprobs(model, batch, temperature)
    logp[soft].sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    model.zero_grad(set_to_none=True)
    batch.advantages = torch.linspace(-1.0, 1.0, batch.batch_size)
    metrics = learner.learn(batch)
    assert metrics["sampler/logprob_diff_max"] < 1e-4  # on-policy before the update: ratio 1
    with torch.no_grad():
        after, _ = soft_completion_logprobs(model, batch, temperature)
    log_ratio = (after - batch.sampling_logprobs)[soft]
    assert log_ratio.abs().max() > 1e-3
    # the learner's soft log-ratio is the Gumbel-density ratio of the recorded noise under the new log-probs
    assert batch.soft_ids is not None and batch.soft_noise is not None and batch.soft_logprobs is not None
    with torch.no_grad():  # rebuilt by hand: the model's own forward on the recorded mixtures
        embeds = model.get_input_embeddings()
        mixed = (batch.soft_weights.unsqueeze(-2) @ embeds.weight[batch.soft_ids]).squeeze(-2)
        inputs = embeds(torch.cat([batch.prompt_ids, batch.completion_ids], dim=1))
        inputs[:, batch.prompt_ids.shape[1]:][soft] = mixed[soft]
        attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1)
        out = model(inputs_embeds=inputs, attention_mask=attention,
                    position_ids=(attention.cumsum(1) - 1).clamp(min=0))
        new = torch.log_softmax(out.logits[:, batch.prompt_ids.shape[1] - 1 : -1].float() / temperature, dim=-1)
        expected = soft_step_log_ratio(new.gather(-1, batch.soft_ids)[soft], batch.soft_logprobs[soft],
                                       batch.soft_noise[soft], top_k=0)
    torch.testing.assert_close(log_ratio, expected, atol=1e-4, rtol=1e-4)
