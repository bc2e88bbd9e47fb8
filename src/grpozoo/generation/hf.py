"""Sampling completions from a Hugging Face causal LM (CPU or GPU); the token loop is
:func:`grpozoo.generation.sampling.sample_tokens`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from grpozoo.generation.decoders import decoding_linears
from grpozoo.generation.samples import Prompt, left_padded, prompt_texts, prompt_token_ids
from grpozoo.generation.sampling import SampledTokens, sample_tokens
from grpozoo.modeling import adapters_folded
from grpozoo.rollouts import Rollouts


@dataclass(frozen=True)
class SamplingParams:
    max_new_tokens: int
    temperature: float = 1.0  # 0 means greedy
    top_p: float = 1.0
    top_k: int = 0  # 0 means off
    min_new_tokens: int = 0  # EOS is suppressed until this many tokens (benchmarks force fixed lengths)


def eos_token_ids(model, tokenizer) -> list[int]:
    ids = getattr(model.generation_config, "eos_token_id", None)
    ids = [ids] if isinstance(ids, int) else list(ids or [])
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in ids:
        ids.append(tokenizer.eos_token_id)
    return ids


def completion_mask_and_truncation(completion_ids: torch.Tensor, eos_ids: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Mask ``[B, T]`` covering each completion up to and including its first EOS, and
    ``truncated [B]``: True where no EOS was generated (the token budget ran out)."""
    is_eos = torch.isin(completion_ids, torch.tensor(eos_ids, device=completion_ids.device))
    has_eos = is_eos.any(dim=1)
    first_eos = torch.where(has_eos, is_eos.int().argmax(dim=1), completion_ids.shape[1] - 1)
    positions = torch.arange(completion_ids.shape[1], device=completion_ids.device)
    mask = (positions.unsqueeze(0) <= first_eos.unsqueeze(1)).long()
    return mask, ~has_eos


def per_prompt_counts(n: int | list[int], num_prompts: int) -> list[int]:
    """``n`` completions for each of ``num_prompts`` prompts, or the list ``n`` itself checked: one
    count >= 1 per prompt."""
    counts = [n] * num_prompts if isinstance(n, int) else [int(c) for c in n]
    if len(counts) != num_prompts:
        raise ValueError(
            f"generate: {len(counts)} rollout counts for {num_prompts} prompts; give one count per prompt"
        )
    if any(c < 1 for c in counts):
        raise ValueError(f"generate: every prompt needs at least one rollout, got counts {counts}")
    return counts


class HFGenerator:
    """Samples ``n`` completions per prompt in one batch, each prompt prefilled once, with the
    learner's own model (the ``hf`` engine): its weights are always the current ones, so a sync only
    records the version."""

    def __init__(self, model, tokenizer):
        self.model = model
        self.tokenizer = tokenizer
        self.eos_ids = eos_token_ids(model, tokenizer)
        self.version = 0

    def sync(self, model, version: int) -> None:
        self.version = version

    def close(self) -> None:
        pass

    def sample(
        self, prompt_ids: torch.Tensor, prompt_mask: torch.Tensor, counts: list[int], params: SamplingParams
    ) -> SampledTokens:
        """The token loop: ``counts[i]`` completions of the left-padded prompt ``prompt_ids[i]``."""
        return sample_tokens(
            self.model, prompt_ids, prompt_mask, counts, params.max_new_tokens, self.eos_ids,
            self.tokenizer.pad_token_id, temperature=params.temperature, top_p=params.top_p, top_k=params.top_k,
            min_new_tokens=params.min_new_tokens,
        )

    @torch.no_grad()
    def generate(
        self, prompts: Sequence[Prompt], examples: list[dict[str, Any]], n: int | list[int], params: SamplingParams
    ) -> Rollouts:
        """``prompts`` are rendered text (chat template applied) or token ids; prompt ``i`` gets ``n`` completions,
        or ``n[i]`` when ``n`` is a list of per-prompt counts (a selector's allocation), all with
        group id ``i``."""
        counts = per_prompt_counts(n, len(prompts))
        repeats = torch.tensor(counts, dtype=torch.long)
        device = next(self.model.parameters()).device
        prompt_ids, prompt_mask = left_padded(prompt_token_ids(self.tokenizer, prompts), self.tokenizer.pad_token_id)
        encoded = {"input_ids": prompt_ids, "attention_mask": prompt_mask}
        was_training = self.model.training
        self.model.eval()
        # LoRA: one matmul a layer while sampling; decoding steps' few rows: a faster weight layout
        with adapters_folded(self.model), decoding_linears(self.model):
            sampled = self.sample(encoded["input_ids"].to(device), encoded["attention_mask"].to(device), counts, params)
        self.model.train(was_training)
        mask, truncated = completion_mask_and_truncation(sampled.ids, self.eos_ids)
        completion_ids = sampled.ids.masked_fill(mask == 0, self.tokenizer.pad_token_id)
        texts = self.tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        lengths = mask.sum(dim=1).tolist()
        token_texts = [
            [self.tokenizer.decode([t]) for t in row[:n]] for row, n in zip(completion_ids.tolist(), lengths, strict=True)
        ]
        return Rollouts(
            prompt_ids=encoded["input_ids"].repeat_interleave(repeats, dim=0),
            prompt_mask=encoded["attention_mask"].repeat_interleave(repeats, dim=0),
            completion_ids=completion_ids.cpu(),
            completion_mask=mask.cpu(),
            group_ids=torch.arange(len(prompts)).repeat_interleave(repeats),
            sampling_logprobs=(sampled.logprobs * mask).cpu(),
            truncated=truncated.cpu(),
            prompts=[p for p, c in zip(prompt_texts(self.tokenizer, prompts), counts, strict=True) for _ in range(c)],
            completions=texts,
            examples=[e for e, c in zip(examples, counts, strict=True) for _ in range(c)],
            entropies=(sampled.entropies * mask).cpu(),
            completion_token_texts=token_texts,
            weight_version=torch.full((len(texts),), self.version, dtype=torch.long),
        )
