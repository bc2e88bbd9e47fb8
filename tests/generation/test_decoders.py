"""The Llama-family decoder computes what the model's own forward computes, step by step, with
padding, repeated and dropped rows and folded LoRA adapters; other models keep the model's forward."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, LlamaConfig, Qwen2Config

from grpozoo.generation.decoders import FEW_ROWS, HFDecoder, LlamaFamilyDecoder, decoder_for, decoding_linears

VOCAB = 97
CONFIGS = {
    # grouped-query attention, tied embeddings
    "llama": LlamaConfig(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True),
    # biases on q, k, v; one key/value head; untied head
    "qwen2": Qwen2Config(vocab_size=VOCAB, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=1, tie_word_embeddings=False),
}


def _model(name: str, seed: int = 0):
    torch.manual_seed(seed)
    return AutoModelForCausalLM.from_config(CONFIGS[name]).eval()


def _prompts(padded: bool):
    torch.manual_seed(1)
    ids = torch.randint(0, VOCAB, (3, 7))
    mask = torch.ones_like(ids)
    if padded:
        mask[0, :3] = 0
        mask[2, :1] = 0
    return ids, mask


def _assert_same_steps(lean, hf, ids, mask):
    torch.testing.assert_close(lean.prefill(ids, mask, 6), hf.prefill(ids, mask, 6), rtol=1e-5, atol=1e-5)
    rows = torch.tensor([0, 0, 1, 2, 2])  # a prompt's cache copied to its group's rows
    lean.keep(rows)
    hf.keep(rows)
    torch.manual_seed(2)
    for t in range(5):
        tokens = torch.randint(0, VOCAB, (len(rows),))
        torch.testing.assert_close(lean.step(tokens), hf.step(tokens), rtol=1e-5, atol=1e-5)
        if t == 1:  # finished rows dropped
            rows = torch.tensor([0, 2, 3])
            lean.keep(rows)
            hf.keep(rows)


@pytest.mark.parametrize("padded", [True, False], ids=["left-padded", "no-padding"])
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_llama_family_decoder_gives_the_model_forward_logits(name, padded):
    model = _model(name)
    lean = LlamaFamilyDecoder.supports(model)
    assert lean is not None
    with torch.no_grad():
        _assert_same_steps(lean, HFDecoder(model), *_prompts(padded))


def test_folded_lora_takes_the_llama_family_decoder_and_unfolded_lora_does_not():
    from peft import LoraConfig, get_peft_model

    from grpozoo.modeling import adapters_folded

    lora = get_peft_model(_model("llama"), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(0)
    for name, p in lora.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.3)  # a trained adapter, not the zero start
    lora.eval()
    assert LlamaFamilyDecoder.supports(lora) is None  # adapters active and unfolded: the model's forward
    assert isinstance(decoder_for(lora), HFDecoder)
    ids, mask = _prompts(padded=True)
    with torch.no_grad():
        unfolded = HFDecoder(lora).prefill(ids, mask, 4)
        with adapters_folded(lora):
            lean = LlamaFamilyDecoder.supports(lora)
            assert lean is not None
            torch.testing.assert_close(lean.prefill(ids, mask, 4), unfolded, rtol=1e-4, atol=1e-5)
        with lora.disable_adapter():
            assert LlamaFamilyDecoder.supports(lora) is not None  # disabled adapters: the base weights


def test_other_models_keep_their_own_forward():
    gpt2 = AutoModelForCausalLM.from_config(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=1, n_head=2)).eval()
    assert isinstance(decoder_for(gpt2), HFDecoder)
    biased = _model("llama")
    biased.lm_head = torch.nn.Linear(64, VOCAB, bias=True)  # not a plain output layer
    assert isinstance(decoder_for(biased), HFDecoder)
    assert isinstance(decoder_for(_model("qwen2")), LlamaFamilyDecoder)


def test_decoding_linears_compute_the_same_products_and_are_undone():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 5), torch.nn.Linear(5, 3, bias=False))
    for rows in (1, 3, FEW_ROWS + 1):
        x = torch.randn(rows, 1, 8)
        expected = model(x)
        with decoding_linears(model):
            assert all("forward" in vars(m) for m in model)
            got = model(x)
        torch.testing.assert_close(got, expected, rtol=1e-6, atol=1e-6)
        assert got.shape == expected.shape and got.is_contiguous()
    assert not any("forward" in vars(m) for m in model)


def test_the_decoder_follows_weights_changed_in_place():
    """Projections are cached between generations; an optimiser's in-place update must reach them."""
    model = _model("qwen2")
    ids, mask = _prompts(padded=False)
    with torch.no_grad():
        before = LlamaFamilyDecoder.supports(model).prefill(ids, mask, 2)
        for p in model.parameters():
            p.mul_(1.5)  # what an optimiser step does: the same tensors, changed in place
        after = LlamaFamilyDecoder.supports(model).prefill(ids, mask, 2)
        torch.testing.assert_close(after, HFDecoder(model).prefill(ids, mask, 2), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(before, after)


def test_packed_weights_of_folded_lora_do_not_pile_up_across_generations():
    """Each fold makes new weight tensors; the packed copies of the old ones must go with them."""
    import gc

    from peft import LoraConfig, get_peft_model

    from grpozoo.generation import decoders
    from grpozoo.modeling import adapters_folded

    lora = get_peft_model(_model("llama"), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear")).eval()
    ids, mask = _prompts(padded=False)
    sizes = []
    for _ in range(3):
        with torch.no_grad(), adapters_folded(lora):
            LlamaFamilyDecoder.supports(lora).prefill(ids, mask, 2)
        gc.collect()
        sizes.append(len(decoders._PACKED))
    assert sizes[0] > 0 and sizes == [sizes[0]] * 3
