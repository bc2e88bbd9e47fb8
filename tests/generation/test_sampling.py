"""The sampling loop: shared prefill and dropped finished rows change nothing but the cost; the
recorded log-probs are the learner's; top-k/top-p and min_new_tokens shape only what is drawn."""

from __future__ import annotations

import copy

import pytest
import torch
from tiny import build_tiny_model, build_tokenizer

from grpozoo.generation.hf import HFGenerator, SamplingParams, completion_mask_and_truncation
from grpozoo.generation.sampling import draw, filter_logits, sample_tokens
from grpozoo.modeling import head_is_plain
from grpozoo.training.forward import completion_logprobs

PROMPTS = ["<u>3+4=</s><a>", "<u>a longer question, 12*3=</s><a>", "<u>x</s><a>"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(tmp_path_factory.mktemp("tiny-sampling"), seed=3)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"  # as the policy's loader sets it
    return model, tokenizer


def _encode(tokenizer, prompts):
    enc = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    return enc["input_ids"], enc["attention_mask"]


@pytest.fixture
def eos_heavy(tiny):
    """The tiny model with a bias raising its EOS logit, so that rows finish at different steps."""
    model, tokenizer = tiny
    eos = tokenizer.eos_token_id
    bias = torch.zeros(model.lm_head.out_features)
    bias[eos] = 3.0
    model.lm_head.bias = torch.nn.Parameter(bias, requires_grad=False)
    assert not head_is_plain(model)
    yield eos
    model.lm_head.bias = None


@pytest.mark.parametrize("prompts", [PROMPTS, ["<u>3+4=</s><a>", "<u>5-2=</s><a>", "<u>1*9=</s><a>"]],
                         ids=["left-padded", "no-padding"])
def test_greedy_rows_equal_each_prompt_decoded_alone_by_generate(tiny, prompts):
    """Shared prefill, left padding (or no mask at all) and the dropping of finished rows give, row
    by row, what HF's own greedy ``generate`` gives for that prompt alone."""
    model, tokenizer = tiny
    ids, mask = _encode(tokenizer, prompts)
    assert bool(mask.all()) == (prompts is not PROMPTS)
    counts = [2, 3, 1]
    out = sample_tokens(model, ids, mask, counts, 12, [tokenizer.eos_token_id], tokenizer.pad_token_id, temperature=0)
    row = 0
    for prompt, count in zip(prompts, counts, strict=True):
        alone, alone_mask = _encode(tokenizer, [prompt])
        ref = model.generate(input_ids=alone, attention_mask=alone_mask, do_sample=False, max_new_tokens=12,
                             eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)[0, alone.shape[1]:]
        for _ in range(count):
            got = out.ids[row, : len(ref)]
            assert got.tolist() == ref.tolist()[: got.shape[0]]
            row += 1


def test_recorded_logprobs_and_entropies_are_the_learners(tiny):
    from grpozoo.rollouts import Rollouts

    model, tokenizer = tiny
    ids, mask = _encode(tokenizer, PROMPTS)
    counts = [3, 3, 3]
    torch.manual_seed(0)
    out = sample_tokens(model, ids, mask, counts, 10, [tokenizer.eos_token_id], tokenizer.pad_token_id,
                        temperature=0.7)
    cmask, truncated = completion_mask_and_truncation(out.ids, [tokenizer.eos_token_id])
    index = torch.repeat_interleave(torch.arange(3), torch.tensor(counts))
    batch = Rollouts(prompt_ids=ids[index], prompt_mask=mask[index], completion_ids=out.ids,
                     completion_mask=cmask, group_ids=index, sampling_logprobs=out.logprobs * cmask,
                     truncated=truncated, prompts=[""] * 9, completions=[""] * 9, examples=[{}] * 9)
    with torch.no_grad():
        logp, entropy = completion_logprobs(model, batch, 0.7, with_entropy=True)
    torch.testing.assert_close(out.logprobs * cmask, logp, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(out.entropies * cmask, entropy, rtol=1e-4, atol=1e-4)


def test_finished_rows_are_padded_and_the_batch_shrinks(tiny, eos_heavy):
    model, tokenizer = tiny
    eos = eos_heavy
    calls = []
    hook = model.get_decoder().register_forward_pre_hook(lambda m, args, kwargs: calls.append(kwargs["input_ids"].shape[0]),
                                           with_kwargs=True)
    try:
        ids, mask = _encode(tokenizer, PROMPTS)
        torch.manual_seed(1)
        out = sample_tokens(model, ids, mask, [8, 8, 8], 16, [eos], tokenizer.pad_token_id, temperature=1.0)
    finally:
        hook.remove()
    cmask, _ = completion_mask_and_truncation(out.ids, [eos])
    lengths = cmask.sum(1)
    assert lengths.min() < lengths.max(), "rows should finish at different steps"
    assert (out.ids[cmask == 0] == tokenizer.pad_token_id).all()
    assert (out.logprobs[cmask == 0] == 0).all() and (out.entropies[cmask == 0] == 0).all()
    assert out.ids.shape[1] == int(lengths.max())  # trimmed to the longest completion
    assert calls[0] == 3  # the prefill runs each prompt once, not 24 rows
    assert max(calls[1:]) <= 24 and calls[-1] < 24  # decoding drops the finished rows
    assert calls[1:] == sorted(calls[1:], reverse=True)


def test_min_new_tokens_suppresses_eos_only_before_the_minimum(tiny, eos_heavy):
    model, tokenizer = tiny
    eos = eos_heavy
    ids, mask = _encode(tokenizer, PROMPTS)
    torch.manual_seed(2)
    out = sample_tokens(model, ids, mask, [6, 6, 6], 12, [eos], tokenizer.pad_token_id, min_new_tokens=5)
    cmask, _ = completion_mask_and_truncation(out.ids, [eos])
    assert int(cmask.sum(1).min()) >= 6  # 5 forced tokens, then the EOS at the earliest
    assert not (out.ids[:, :5] == eos).any()


def test_filter_logits_by_hand():
    logits = torch.log(torch.tensor([[0.5, 0.2, 0.15, 0.1, 0.05]]))
    assert torch.isfinite(filter_logits(logits, top_k=2)).tolist() == [[True, True, False, False, False]]
    # top-p 0.6: 0.5 alone falls short, 0.5 + 0.2 reaches it
    assert torch.isfinite(filter_logits(logits, top_p=0.6)).tolist() == [[True, True, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.5)).tolist() == [[True, False, False, False, False]]
    assert torch.isfinite(filter_logits(logits, top_p=0.01)).sum() == 1  # the most likely always stays
    shuffled = logits[:, [3, 0, 4, 2, 1]]
    assert torch.isfinite(filter_logits(shuffled, top_p=0.8)).tolist() == [[False, True, False, True, True]]


def test_top_k_one_is_greedy(tiny):
    model, tokenizer = tiny
    ids, mask = _encode(tokenizer, PROMPTS)
    greedy = sample_tokens(model, ids, mask, [2, 2, 2], 8, [tokenizer.eos_token_id], tokenizer.pad_token_id,
                           temperature=0)
    top1 = sample_tokens(model, ids, mask, [2, 2, 2], 8, [tokenizer.eos_token_id], tokenizer.pad_token_id,
                         temperature=1.3, top_k=1)
    assert torch.equal(greedy.ids, top1.ids)


def test_generator_builds_rollouts_with_per_prompt_counts(tiny):
    model, tokenizer = tiny
    generator = HFGenerator(model, tokenizer)
    torch.manual_seed(0)
    out = generator.generate(PROMPTS[:2], [{"answer": "7"}, {"answer": "36"}], [1, 3], SamplingParams(6))
    assert out.batch_size == 4 and out.group_ids.tolist() == [0, 1, 1, 1]
    assert out.prompt_ids.shape[0] == 4 and out.completion_ids.shape == out.sampling_logprobs.shape
    assert [e["answer"] for e in out.examples] == ["7", "36", "36", "36"]
    assert len(out.completion_token_texts[1]) == int(out.completion_mask[1].sum())


def test_draw_follows_the_distribution_and_never_draws_a_zero():
    probs = torch.tensor([[0.0, 0.5, 0.0, 0.3, 0.2]]).repeat(20000, 1)
    torch.manual_seed(0)
    counts = torch.bincount(draw(probs), minlength=5).float() / 20000
    assert counts[0] == 0 and counts[2] == 0
    torch.testing.assert_close(counts, probs[0], atol=0.015, rtol=0)
    assert draw(torch.tensor([[0.0, 0.0, 1.0]])).item() == 2


def test_folded_adapters_give_the_unfolded_outputs_and_leave_the_base_untouched(tiny):
    from peft import LoraConfig, get_peft_model

    from grpozoo.modeling import adapters_folded

    model, tokenizer = tiny
    lora = get_peft_model(copy.deepcopy(model), LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(0)
    for name, p in lora.named_parameters():
        if "lora_B" in name:
            p.data.normal_(0, 0.3)  # a trained adapter: not the zero start
    lora.eval()
    ids, mask = _encode(tokenizer, PROMPTS)
    base_before = {n: p.detach().clone() for n, p in lora.named_parameters() if "lora_" not in n}
    with torch.no_grad():
        unfolded = lora(input_ids=ids, attention_mask=mask).logits
        with adapters_folded(lora):
            folded = lora(input_ids=ids, attention_mask=mask).logits
            greedy_folded = sample_tokens(lora, ids, mask, [1, 1, 1], 8, [tokenizer.eos_token_id],
                                          tokenizer.pad_token_id, temperature=0)
        with lora.disable_adapter():
            base_only = lora(input_ids=ids, attention_mask=mask).logits
        greedy = sample_tokens(lora, ids, mask, [1, 1, 1], 8, [tokenizer.eos_token_id], tokenizer.pad_token_id,
                               temperature=0)
    torch.testing.assert_close(folded, unfolded, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(unfolded, base_only, atol=1e-3)  # the adapter matters here
    assert torch.equal(greedy_folded.ids, greedy.ids)
    for name, p in lora.named_parameters():  # the base weights are bit for bit the same objects' values
        if "lora_" not in name:
            assert torch.equal(p, base_before[name]), name
    assert all(not layer.merged for layer in lora.modules() if hasattr(layer, "merged_adapters"))
    # a second generation after a training step: the kept fold buffers take the new adapter values
    with torch.no_grad():
        for name, p in lora.named_parameters():
            if "lora_B" in name:
                p.add_(0.1)
        unfolded = lora(input_ids=ids, attention_mask=mask).logits
        with adapters_folded(lora):
            folded = lora(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(folded, unfolded, rtol=1e-4, atol=1e-5)
