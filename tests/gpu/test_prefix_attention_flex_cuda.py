"""The flex attention path of the shared-prefix learning forward (Prefix Grouper: Liu et al. 2025,
arXiv:2506.05433) on CUDA, where it runs compiled (``torch.compile(flex_attention)``) by default:
it gives the split SDPA path's outputs and gradients. Skipped, with the reason, without a CUDA GPU."""

from __future__ import annotations

import pytest
import torch
from training.test_prefix_attention_flex import MIXED, make_batch

from grpozoo.training import prefix_attention
from grpozoo.training.prefix_attention import attention_kernel, pack_groups, shared_prefix_attention

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU: checks the compiled flex attention path against the SDPA path on CUDA",
)


def _attention(kernel, layout, query, key, value, weights, scaling):
    query, key, value = (x.clone().requires_grad_() for x in (query, key, value))
    with attention_kernel(kernel):
        out, _ = shared_prefix_attention(None, query, key, value, None, scaling=scaling, shared_prefix=layout)
    (out.float() * weights).sum().backward()
    return out.detach(), query.grad, key.grad, value.grad


@pytest.mark.parametrize("dim", [16, 64])
@pytest.mark.parametrize("scaling", [None, 0.2])
def test_compiled_flex_path_equals_the_sdpa_path(dim, scaling):
    torch.manual_seed(0)
    for batch in (MIXED, make_batch([40, 7, 130], [2, 0, 1, 2, 0, 2], [90, 1, 33, 150, 2, 64])):
        layout = pack_groups(batch).to("cuda")
        n = len(layout.ids)
        query = torch.randn(1, 8, n, dim, device="cuda")
        key, value = torch.randn(2, 1, 2, n, dim, device="cuda").unbind(0)
        weights = torch.randn(1, n, 8, dim, device="cuda")
        sdpa = _attention("sdpa", layout, query, key, value, weights, scaling)
        assert layout.block_mask is None
        flex = _attention("auto", layout, query, key, value, weights, scaling)  # flex, compiled, on CUDA
        assert layout.block_mask is not None and layout.block_mask.kv_num_blocks.is_cuda
        for name, a, b in zip(["output", "query grad", "key grad", "value grad"], flex, sdpa, strict=True):
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=name)


def test_compiled_flex_path_in_bfloat16():
    torch.manual_seed(0)
    layout = pack_groups(MIXED).to("cuda")
    n = len(layout.ids)
    query = torch.randn(1, 4, n, 64, device="cuda", dtype=torch.bfloat16)
    key, value = torch.randn(2, 1, 2, n, 64, device="cuda", dtype=torch.bfloat16).unbind(0)
    weights = torch.randn(1, n, 4, 64, device="cuda")
    sdpa = _attention("sdpa", layout, query, key, value, weights, None)
    flex = _attention("auto", layout, query, key, value, weights, None)
    assert layout.block_mask is not None
    for name, a, b in zip(["output", "query grad", "key grad", "value grad"], flex, sdpa, strict=True):
        torch.testing.assert_close(a.float(), b.float(), rtol=2e-2, atol=2e-2, msg=name)


def _model_outputs(model, layout, kernel):
    model.zero_grad(set_to_none=True)
    with attention_kernel(kernel), prefix_attention.prefix_attention(model) as calls:
        logits = model(input_ids=layout.ids[None], position_ids=layout.positions[None], use_cache=False,
                       shared_prefix=layout).logits
    assert calls.count == model.config.num_hidden_layers
    weights = torch.linspace(0.5, 1.5, logits.numel(), device=logits.device).view_as(logits)
    (logits.float() * weights).sum().backward()
    return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compiled_flex_path_equals_the_sdpa_path_in_a_model(monkeypatch):
    """A 2-layer Llama with heads of 16 dimensions (the least the compiled kernel takes) and
    grouped-query attention: the packed forward's logits and every weight's gradient."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).cuda()
    layout = pack_groups(make_batch([12, 3, 30], [2, 0, 1, 0, 2], [20, 1, 9, 40, 2])).to("cuda")
    flex_calls = []
    original = prefix_attention._flex_attend
    monkeypatch.setattr(prefix_attention, "_flex_attend", lambda *a, **k: flex_calls.append(1) or original(*a, **k))
    sdpa_logits, sdpa = _model_outputs(model, layout, "sdpa")
    assert not flex_calls
    flex_logits, flex = _model_outputs(model, layout, "auto")
    assert len(flex_calls) == 2
    torch.testing.assert_close(flex_logits, sdpa_logits, rtol=1e-4, atol=1e-5)
    assert sdpa.keys() == flex.keys() and sdpa
    for name in sdpa:
        torch.testing.assert_close(flex[name], sdpa[name], rtol=1e-4, atol=1e-5, msg=name)


def test_heads_below_16_dimensions_keep_the_sdpa_path():
    """The compiled kernel takes heads of at least 16 dimensions: smaller ones (the tiny test model's
    8) stay on the SDPA path by default."""
    layout = pack_groups(MIXED).to("cuda")
    n = len(layout.ids)
    query, key, value = torch.randn(3, 1, 4, n, 8, device="cuda").unbind(0)
    with torch.no_grad():
        shared_prefix_attention(None, query, key, value, None, shared_prefix=layout)
    assert layout.block_mask is None
