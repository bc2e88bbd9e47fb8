"""The fused LoRA linear gives PEFT's values and gradients, and leaves every other case to PEFT."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

from grpozoo.training.lora_linear import _single_adapter, fused_lora


def _lora_model(dropout: float = 0.0):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=61, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2)
    model = get_peft_model(AutoModelForCausalLM.from_config(config),
                           LoraConfig(r=4, lora_alpha=12, lora_dropout=dropout, target_modules="all-linear"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.3)  # a trained adapter: with B = 0 the adapter's input gradient vanishes
    return model


def _loss_and_grads(model, ids):
    model.zero_grad(set_to_none=True)
    logits = model(input_ids=ids).logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_fused_lora_gives_peft_values_and_gradients():
    model = _lora_model()
    model.train()
    ids = torch.randint(0, 61, (3, 9))
    logits, grads = _loss_and_grads(model, ids)
    with fused_lora(model):
        assert sum("forward" in vars(m) for m in model.modules()) == 14  # 7 linears x 2 layers
        fused_logits, fused_grads = _loss_and_grads(model, ids)
    assert not any("forward" in vars(m) for m in model.modules())
    torch.testing.assert_close(fused_logits, logits, rtol=1e-5, atol=1e-6)
    assert grads.keys() == fused_grads.keys() and len(grads) == 28  # A and B of every layer
    for name, grad in grads.items():
        assert grad.abs().sum() > 0, name
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-4, atol=1e-6, msg=name)


def test_input_gradient_flows_through_the_fused_layer():
    """The gradient with respect to a layer's input is the base's plus the adapter's."""
    model = _lora_model()
    layer = model.base_model.model.model.layers[0].mlp.up_proj
    x = torch.randn(2, 5, 32, requires_grad=True)
    direction = torch.randn(2, 5, 48)
    (expected,) = torch.autograd.grad((layer(x) * direction).sum(), x)
    with fused_lora(model):
        (got,) = torch.autograd.grad((layer(x) * direction).sum(), x)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_disabled_merged_and_dropout_cases_run_peft_forward():
    model = _lora_model()
    ids = torch.randint(0, 61, (2, 6))
    with torch.no_grad():
        with model.disable_adapter():
            base = model(input_ids=ids).logits
            with fused_lora(model):
                assert torch.equal(model(input_ids=ids).logits, base)
    layer = model.base_model.model.model.layers[0].self_attn.q_proj
    x = torch.randn(1, 32)
    assert _single_adapter(layer, x) is not None
    assert _single_adapter(layer, x.double()) is None  # dtypes differ: PEFT casts, so it runs
    with_dropout = _lora_model(dropout=0.5)
    dropout_layer = with_dropout.base_model.model.model.layers[0].self_attn.q_proj
    with_dropout.train()
    assert _single_adapter(dropout_layer, x) is None
    with_dropout.eval()  # dropout has no effect in eval mode
    assert _single_adapter(dropout_layer, x) is not None


def test_merged_adapter_runs_peft_forward():
    model = _lora_model()
    layer = model.base_model.model.model.layers[1].mlp.down_proj
    layer.merge()
    assert _single_adapter(layer, torch.randn(1, 48)) is None
