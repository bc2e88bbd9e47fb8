"""The fused, chunked output layer gives autograd's log-softmax values and gradients, in one chunk
or many, and the learner's forward through it equals the model's own logits."""

from __future__ import annotations

import pytest
import torch
from training.test_trainer import make_trainer

from grpozoo.modeling import head_is_plain
from grpozoo.training.forward import completion_logprobs, token_logprobs
from grpozoo.training.fused_head import head_logprobs


def _reference(hidden, weight, targets, temperature):
    z = (hidden @ weight.T) / temperature
    log_p = torch.log_softmax(z, dim=-1)
    return log_p.gather(1, targets[:, None]).squeeze(1), -(log_p.exp() * log_p).sum(-1)


@pytest.mark.parametrize("chunk_tokens", [64, 3, 1])  # one chunk (logits kept) and recomputed chunks
@pytest.mark.parametrize("entropy_grad", [False, True])
def test_values_and_gradients_equal_autograd(chunk_tokens, entropy_grad):
    torch.manual_seed(0)
    n, h, v, temperature = 10, 8, 37, 0.7
    hidden = torch.randn(n, h, requires_grad=True)
    weight = torch.randn(v, h, requires_grad=True)
    targets = torch.randint(0, v, (n,))
    w_logp, w_ent = torch.randn(n), torch.randn(n)

    logp, ent = head_logprobs(hidden, weight, targets, temperature, True, entropy_grad, chunk_tokens)
    loss = (logp * w_logp).sum() + ((ent * w_ent).sum() if entropy_grad else 0)
    gh, gw = torch.autograd.grad(loss, [hidden, weight])

    ref_logp, ref_ent = _reference(hidden, weight, targets, temperature)
    ref_loss = (ref_logp * w_logp).sum() + ((ref_ent * w_ent).sum() if entropy_grad else 0)
    rh, rw = torch.autograd.grad(ref_loss, [hidden, weight])
    torch.testing.assert_close(logp, ref_logp.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ent, ref_ent.detach(), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(gh, rh, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(gw, rw, rtol=1e-4, atol=1e-5)
    assert ent.requires_grad == entropy_grad


def test_a_frozen_output_layer_gets_no_gradient():
    hidden = torch.randn(4, 6, requires_grad=True)
    weight = torch.randn(11, 6)  # e.g. LoRA: the output layer is not trained
    logp, _ = head_logprobs(hidden, weight, torch.tensor([1, 2, 3, 4]))
    logp.sum().backward()
    assert hidden.grad is not None and weight.grad is None


def test_the_learner_forward_equals_the_models_own_logits(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "model.lora.enabled=false", "rollout.max_new_tokens=8")
    assert head_is_plain(trainer.model)
    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(2), trainer.step)
    model = trainer.model

    def grads(fn):
        model.zero_grad(set_to_none=True)
        logp, ent = fn()
        (logp.sum() + 0.3 * ent.sum()).backward()
        return logp.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    def plain():
        input_ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
        attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1)
        logits = model(input_ids=input_ids, attention_mask=attention,
                       position_ids=(attention.cumsum(1) - 1).clamp(min=0)).logits
        return token_logprobs(logits[:, batch.prompt_ids.shape[1] - 1 : -1], batch, 1.0, True, True)

    fused_logp, fused = grads(lambda: completion_logprobs(model, batch, 1.0, True, True))
    plain_logp, reference = grads(plain)
    torch.testing.assert_close(fused_logp, plain_logp, rtol=1e-5, atol=1e-5)
    assert fused.keys() == reference.keys()
    for name in reference:
        torch.testing.assert_close(fused[name], reference[name], rtol=1e-3, atol=1e-6, msg=name)


def test_a_scaled_or_biased_output_layer_is_not_plain(tiny_overrides):
    trainer = make_trainer(tiny_overrides, "model.lora.enabled=false")
    model = trainer.model
    model.config.final_logit_softcapping = 30.0
    assert not head_is_plain(model)
    model.config.final_logit_softcapping = None
    model.lm_head.bias = torch.nn.Parameter(torch.randn(model.lm_head.out_features))
    assert not head_is_plain(model)
    # the fallback runs the model's own output layer, bias included
    torch.manual_seed(0)
    batch = trainer.rollouts.generate(trainer.rollouts.selector.next(1), trainer.step)
    with torch.no_grad():
        logp, _ = completion_logprobs(model, batch)
        input_ids = torch.cat([batch.prompt_ids, batch.completion_ids], dim=1)
        attention = torch.cat([batch.prompt_mask, batch.completion_mask], dim=1)
        logits = model(input_ids=input_ids, attention_mask=attention,
                       position_ids=(attention.cumsum(1) - 1).clamp(min=0)).logits
        expected, _ = token_logprobs(logits[:, batch.prompt_ids.shape[1] - 1 : -1], batch, 1.0, False, False)
    torch.testing.assert_close(logp, expected, rtol=1e-5, atol=1e-5)
