"""Soft-thinking rollouts as SofT-GRPO samples them (Zheng and Lee 2025, "SofT-GRPO: Surpassing
Discrete-Token LLM Reinforcement Learning via Gumbel-Reparameterized Soft-Thinking Policy
Optimization", arXiv:2511.06411), with the ``hf`` engine.

:class:`SoftThinkingGenerator` samples like :class:`~grpozoo.generation.hf.HFGenerator`, except that
the first ``tokens`` completion positions of every row are soft steps. At a soft step the policy's
tempered log-probs ``ℓ [V]`` give the ``top_k`` most likely tokens (the end-of-turn tokens left out:
a soft step never ends a completion), Gumbel noise ``g [k]`` is drawn on them, and the model's next
input is the mixture ``Σ_k y_k·e_k``, ``y = softmax((ℓ + g)/τ)``, fed as ``inputs_embeds`` through
the model's own forward and KV cache. Then discrete sampling continues from that cache as usual
(:func:`~grpozoo.generation.sampling.sample_tokens`). Each soft step records its top-k ids, weights,
noise and log-probs (``Rollouts.soft_*``) for the learner
(:func:`grpozoo.training.soft_forward.soft_completion_logprobs`); its ``completion_ids`` entry is the
Gumbel-max token ``argmax_k(ℓ_k + g_k)`` (what ``τ → 0`` would have read, so the text stays
readable), and its sampling log-prob is the Gumbel log-density of the noise,
:func:`~grpozoo.generation.soft_thinking.soft_step_logprob` under the sampling log-probs.

GUESS: a fixed number of soft steps at the start of every completion stands for the thinking part
(the paper thinks softly until the end-of-thinking tag); greedy sampling (temperature 0) uses no noise
(plain soft thinking). Soft steps run through the model's own forward with a cache (not grpozoo's
faster Llama decoder, which reads token ids only).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import torch

from grpozoo.errors import ConfigError
from grpozoo.generation.decoders import HFDecoder
from grpozoo.generation.hf import HFGenerator, SamplingParams
from grpozoo.generation.sampling import SampledTokens, sample_tokens
from grpozoo.generation.soft_thinking import (
    gumbel_max_token,
    gumbel_noise,
    mixture_embedding,
    soft_step_logprob,
    soft_token_weights,
)
from grpozoo.rollouts import Rollouts

SOFT_FIELDS = ("soft_ids", "soft_weights", "soft_noise", "soft_logprobs")


class SoftStepDecoder(HFDecoder):
    """The model's own forward and cache, which also takes one input embedding per row
    (:meth:`step_embeds`), and continues discrete decoding after it (:meth:`resume`)."""

    pending: torch.Tensor | None = None  # the logits the next "prefill" answers (set by resume)

    def step_embeds(self, embeds: torch.Tensor) -> torch.Tensor:
        """Append one input embedding ``[b, D]`` per row; returns the logits ``[b, V]`` of the next."""
        if self.attention is not None:
            self.attention = torch.cat([self.attention, torch.ones_like(self.attention[:, :1])], dim=1)
        out = self.model(inputs_embeds=embeds.unsqueeze(1), attention_mask=self.attention,
                         position_ids=self.next_position.unsqueeze(1), use_cache=True, **{self.cache_kw: self.cache})
        self.next_position = self.next_position + 1
        return out.logits[:, -1, :]

    def resume(self, logits: torch.Tensor) -> SoftStepDecoder:
        """This decoder as :func:`sample_tokens` takes it, its "prefill" answering ``logits [b, V]``
        (those after the last soft step) instead of running a prompt."""
        self.pending = logits
        return self

    def prefill(self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, max_new_tokens: int) -> torch.Tensor:
        pending = self.pending
        if pending is None:
            return super().prefill(prompt_ids, prompt_mask, max_new_tokens)
        self.pending = None
        return pending


class SoftThinkingGenerator(HFGenerator):
    """The ``hf`` engine with ``tokens`` soft steps at the start of every completion (see the module);
    ``tau`` the Gumbel-softmax temperature, ``top_k`` the mixture's support."""

    def __init__(self, model, tokenizer, tokens: int, tau: float = 0.1, top_k: int = 15):
        super().__init__(model, tokenizer)
        if tokens < 1 or tau <= 0 or top_k < 1:
            raise ValueError(f"soft thinking: tokens={tokens} and top_k={top_k} must be >= 1, tau={tau} > 0")
        self.tokens, self.tau, self.top_k = tokens, tau, top_k
        self._recorded: dict[str, torch.Tensor] | None = None

    def sample(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, counts: list[int], params: SamplingParams
    ) -> SampledTokens:
        device = prompt_ids.device
        group = torch.repeat_interleave(torch.arange(len(counts), device=device), torch.tensor(counts, device=device))
        rows = len(group)
        decoder = SoftStepDecoder(self.model)
        logits = decoder.prefill(prompt_ids, prompt_mask, params.max_new_tokens)[group]
        decoder.keep(group)
        steps = min(self.tokens, params.max_new_tokens)
        eos = torch.tensor(self.eos_ids, device=device, dtype=torch.long)
        embeddings = self.model.get_input_embeddings().weight
        temperature = params.temperature if params.temperature > 0 else 1.0
        top_k = min(self.top_k, logits.shape[-1] - len(self.eos_ids))
        ids, logprobs, entropies = [], [], []
        recorded: dict[str, list[torch.Tensor]] = {name: [] for name in SOFT_FIELDS}
        for _ in range(steps):
            log_probs = torch.log_softmax(logits.float() / temperature, dim=-1)
            entropies.append(-(log_probs.exp() * log_probs).sum(dim=-1))
            support = log_probs.index_fill(-1, eos, float("-inf")).topk(top_k, dim=-1).indices  # [b, k]
            old = log_probs.gather(-1, support)
            noise = (gumbel_noise(support.shape) if params.temperature > 0 else torch.zeros(support.shape))
            noise = noise.to(device=device, dtype=old.dtype)
            weights = soft_token_weights(old, noise, tau=self.tau, top_k=0)  # top_k=0: all k recorded tokens
            ids.append(support.gather(-1, gumbel_max_token(old, noise, top_k=0).unsqueeze(-1)).squeeze(-1))
            logprobs.append(soft_step_logprob(old, old, noise))
            for name, value in zip(SOFT_FIELDS, (support, weights, noise, old), strict=True):
                recorded[name].append(value)
            logits = decoder.step_embeds(mixture_embedding(weights, support, embeddings))
        self._recorded = {name: torch.stack(values, dim=1) for name, values in recorded.items()}
        soft = SampledTokens(torch.stack(ids, dim=1), torch.stack(logprobs, dim=1), torch.stack(entropies, dim=1))
        if steps == params.max_new_tokens:
            return soft
        rest = sample_tokens(
            self.model, prompt_ids.new_empty((rows, 0)), prompt_mask.new_ones((rows, 0)), [1] * rows,
            params.max_new_tokens - steps, self.eos_ids, self.tokenizer.pad_token_id, temperature=params.temperature,
            top_p=params.top_p, top_k=params.top_k, min_new_tokens=max(params.min_new_tokens - steps, 0),
            decoder=decoder.resume(logits),
        )
        return SampledTokens(*(torch.cat([a, b], dim=1) for a, b in
                               zip((soft.ids, soft.logprobs, soft.entropies), (rest.ids, rest.logprobs, rest.entropies),
                                   strict=True)))

    @torch.no_grad()
    def generate(self, prompts, examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams) -> Rollouts:
        """As :meth:`HFGenerator.generate`, the soft steps' records in ``soft_mask`` and ``soft_*``."""
        batch = super().generate(prompts, examples, n, params)
        recorded, self._recorded = self._recorded, None
        assert recorded is not None
        rows, width = batch.completion_ids.shape
        steps = recorded["soft_ids"].shape[1]  # no soft step ends a row: each is inside its completion
        mask = torch.zeros(rows, width, dtype=torch.long)
        mask[:, :steps] = 1
        padded: dict[str, Any] = {}
        for name, value in recorded.items():
            full = torch.zeros(rows, width, value.shape[-1], dtype=value.dtype)
            full[:, :steps] = value.cpu()
            padded[name] = full
        return replace(batch, soft_mask=mask, **padded)


def with_soft_thinking(engine, rollout):
    """``engine`` as ``rollout.soft_thinking`` asks: the ``hf`` engine replaced by a
    :class:`SoftThinkingGenerator` on the same model where ``tokens`` is above 0, else as it is."""
    soft = rollout.soft_thinking
    if soft.tokens <= 0:
        return engine
    if type(engine) is not HFGenerator:
        raise ConfigError(
            f"rollout.soft_thinking.tokens={soft.tokens} needs generation.engine=hf: the soft steps feed "
            f"embedding mixtures through grpozoo's own sampler"
        )
    return SoftThinkingGenerator(engine.model, engine.tokenizer, soft.tokens, soft.tau, soft.top_k)
