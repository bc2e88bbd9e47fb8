"""Soft-thinking rollouts (Zheng and Lee 2025, "SofT-GRPO", arXiv:2511.06411): at every soft step
the model reads the mixture Σ w_k e_k of the recorded weights, a point of the convex hull of the
recorded top-k embeddings; the recorded token is the Gumbel-max one, and as τ → 0 the mixture is
that token's embedding; without soft steps the engine is the plain one."""

from __future__ import annotations

import pytest
import torch
from tiny import build_tiny_model, build_tokenizer

from grpozoo.config import RolloutConfig, SoftThinkingConfig
from grpozoo.generation.hf import HFGenerator, SamplingParams
from grpozoo.generation.soft_engine import SoftThinkingGenerator, with_soft_thinking
from grpozoo.generation.soft_thinking import gumbel_log_density, mixture_embedding

PROMPTS = ["<u>3+4=</s><a>", "<u>a longer question, 12*3=</s><a>"]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from transformers import AutoModelForCausalLM

    path = build_tiny_model(tmp_path_factory.mktemp("tiny-soft"), seed=4)
    model = AutoModelForCausalLM.from_pretrained(path).eval()
    tokenizer = build_tokenizer()
    tokenizer.padding_side = "left"
    return model, tokenizer


def soft_rollouts(tiny, tokens=3, tau=0.5, top_k=4, max_new_tokens=7):
    """Rollouts of PROMPTS (2 each) and the input embedding each soft step fed the first layer
    ``[steps][B, D]``."""
    model, tokenizer = tiny
    seen: list[torch.Tensor] = []

    def record(module, args, kwargs):
        hidden = kwargs.get("hidden_states", args[0] if args else None)
        seen.append(hidden.detach().clone())

    hook = model.model.layers[0].register_forward_pre_hook(record, with_kwargs=True)
    try:
        torch.manual_seed(0)
        engine = SoftThinkingGenerator(model, tokenizer, tokens, tau=tau, top_k=top_k)
        batch = engine.generate(PROMPTS, [{}] * len(PROMPTS), 2, SamplingParams(max_new_tokens))
    finally:
        hook.remove()
    # call 0 is the prompts' prefill; calls 1..tokens are the soft steps, one position a row
    return batch, [h[:, 0] for h in seen[1 : 1 + tokens]]


def test_every_soft_step_reads_the_mixture_of_its_recorded_top_k_embeddings(tiny):
    model, tokenizer = tiny
    batch, fed = soft_rollouts(tiny)
    embeddings = model.get_input_embeddings().weight.detach()
    assert batch.soft_mask is not None and batch.soft_ids is not None and batch.soft_weights is not None
    assert batch.soft_mask[:, :3].eq(1).all() and batch.soft_mask[:, 3:].eq(0).all()
    assert batch.completion_mask[:, :3].eq(1).all()  # a soft step never ends a row
    gen = torch.Generator().manual_seed(5)
    directions = torch.randn(300, embeddings.shape[1], generator=gen)
    for t, inputs in enumerate(fed):
        ids, weights = batch.soft_ids[:, t], batch.soft_weights[:, t]  # [B, k]
        assert inputs.shape == (4, embeddings.shape[1])
        torch.testing.assert_close(inputs, mixture_embedding(weights, ids, embeddings), atol=1e-6, rtol=0)
        assert (weights >= 0).all() and torch.allclose(weights.sum(-1), torch.ones(4))
        assert (weights < 0.999).any()  # at tau 0.5 a real mixture, not a one-hot
        # in the convex hull of the k embeddings: along every direction between the nearest and farthest vertex
        along = inputs @ directions.T  # [B, 300]
        vertices = embeddings[ids] @ directions.T  # [B, k, 300]
        assert (along <= vertices.max(dim=1).values + 1e-5).all()
        assert (along >= vertices.min(dim=1).values - 1e-5).all()
        # the top-k of the sampler's log-probs, EOS left out
        assert (batch.soft_logprobs[:, t].diff(dim=-1) <= 0).all()
        assert not (ids == tokenizer.eos_token_id).any()
        # the recorded token is the Gumbel-max one; the sampling log-prob is the noise's Gumbel log-density
        perturbed = batch.soft_logprobs[:, t] + batch.soft_noise[:, t]
        assert batch.completion_ids[:, t].tolist() == ids.gather(1, perturbed.argmax(-1, keepdim=True))[:, 0].tolist()
        torch.testing.assert_close(batch.sampling_logprobs[:, t], gumbel_log_density(batch.soft_noise[:, t]).sum(-1))
    # the rows differ at the soft steps (each its own noise) and the text holds the Gumbel-max tokens
    assert batch.soft_noise[0, 0].ne(batch.soft_noise[1, 0]).any()
    assert all(len(text) > 0 for text in batch.completions)


def test_as_tau_goes_to_zero_a_soft_step_reads_its_gumbel_max_token(tiny):
    model, _ = tiny
    batch, fed = soft_rollouts(tiny, tau=1e-6)
    embeddings = model.get_input_embeddings().weight.detach()
    for t, inputs in enumerate(fed):
        torch.testing.assert_close(inputs, embeddings[batch.completion_ids[:, t]], atol=1e-6, rtol=0)


def test_the_discrete_part_continues_within_the_token_budget(tiny):
    batch, _ = soft_rollouts(tiny, tokens=2, max_new_tokens=5)
    assert batch.completion_ids.shape[1] <= 5 and batch.soft_ids.shape[:2] == batch.completion_ids.shape
    all_soft, _ = soft_rollouts(tiny, tokens=6, max_new_tokens=4)  # the budget cuts the soft steps
    assert all_soft.completion_ids.shape[1] == 4 and all_soft.soft_mask.eq(1).all()


def test_without_soft_steps_the_engine_is_the_plain_one(tiny):
    model, tokenizer = tiny
    plain = HFGenerator(model, tokenizer)
    assert RolloutConfig().soft_thinking.tokens == 0
    assert with_soft_thinking(plain, RolloutConfig()) is plain
    soft = with_soft_thinking(plain, RolloutConfig(soft_thinking=SoftThinkingConfig(tokens=2)))
    assert isinstance(soft, SoftThinkingGenerator) and soft.model is model
    batch = plain.generate(PROMPTS, [{}] * 2, 2, SamplingParams(5))
    assert batch.soft_mask is None and batch.soft_ids is None


def test_soft_thinking_is_refused_where_a_row_would_be_continued_or_another_engine_samples(tiny):
    from pydantic import ValidationError

    from grpozoo.config import RethinkConfig
    from grpozoo.errors import ConfigError

    with pytest.raises(ValidationError, match="soft_thinking"):
        RolloutConfig(soft_thinking=SoftThinkingConfig(tokens=2), rethink=RethinkConfig(fraction=0.5))

    class OtherEngine:
        pass

    with pytest.raises(ConfigError, match="generation.engine=hf"):
        with_soft_thinking(OtherEngine(), RolloutConfig(soft_thinking=SoftThinkingConfig(tokens=2)))
