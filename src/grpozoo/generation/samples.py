"""What the inference engines share: prompts as token ids, a :class:`~grpozoo.rollouts.Rollouts`
from their samples (token ids and log-probs per completion, as vLLM returns them), and the
learner's weights saved as a numbered version for an engine to load.

A prompt is rendered text (chat template applied), or token ids: a multi-turn episode continues
from the exact tokens sampled so far, which decoding and tokenising again could change."""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from grpozoo.rollouts import Rollouts

Prompt = str | list[int]


def rollouts_from_samples(
    tokenizer,
    prompts: Sequence[Prompt],
    prompt_ids: list[list[int]],
    examples: list[dict[str, Any]],
    counts: list[int],
    samples: list[tuple[list[int], list[float]]],
    eos_ids: list[int],
    version: int,
) -> Rollouts:
    """A :class:`Rollouts` from an engine's samples: ``samples`` holds, prompt by prompt (``counts[i]``
    for prompt ``i``, tokenised as ``prompt_ids[i]``), each completion's token ids and their
    log-probs, an EOS (any of ``eos_ids``) ending a completion and included in it. Prompts are
    left-padded and completions right-padded with the tokenizer's pad id."""
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    width = max(1, max(len(ids) for ids, _ in samples))
    rows = len(samples)
    completion_ids = torch.full((rows, width), pad, dtype=torch.long)
    mask = torch.zeros((rows, width), dtype=torch.long)
    logprobs = torch.zeros((rows, width))
    truncated = torch.ones(rows, dtype=torch.bool)
    for i, (ids, lps) in enumerate(samples):
        if len(ids) != len(lps):
            raise ValueError(f"engine returned {len(ids)} tokens but {len(lps)} log-probs for one completion")
        cut = next((k + 1 for k, t in enumerate(ids) if t in eos_ids), len(ids))  # up to the first EOS
        completion_ids[i, :cut] = torch.tensor(ids[:cut], dtype=torch.long)
        logprobs[i, :cut] = torch.tensor(lps[:cut])
        mask[i, :cut] = 1
        truncated[i] = not (cut and ids[cut - 1] in eos_ids)  # the budget ran out before an EOS
    prompt_tensor, prompt_mask = left_padded(prompt_ids, pad)
    repeats = torch.tensor(counts, dtype=torch.long)
    lengths = mask.sum(dim=1).tolist()
    return Rollouts(
        prompt_ids=prompt_tensor.repeat_interleave(repeats, dim=0),
        prompt_mask=prompt_mask.repeat_interleave(repeats, dim=0),
        completion_ids=completion_ids,
        completion_mask=mask,
        group_ids=torch.arange(len(prompts)).repeat_interleave(repeats),
        sampling_logprobs=logprobs,
        truncated=truncated,
        prompts=[p for p, c in zip(prompt_texts(tokenizer, prompts), counts, strict=True) for _ in range(c)],
        completions=tokenizer.batch_decode(completion_ids.masked_fill(mask == 0, pad), skip_special_tokens=True),
        examples=[e for e, c in zip(examples, counts, strict=True) for _ in range(c)],
        completion_token_texts=[
            [tokenizer.decode([t]) for t in row[:n]] for row, n in zip(completion_ids.tolist(), lengths, strict=True)
        ],
        weight_version=torch.full((rows,), version, dtype=torch.long),
    )


def prompt_token_ids(tokenizer, prompts: Sequence[Prompt]) -> list[list[int]]:
    """Each prompt's token ids: a rendered prompt tokenised as the learner does (no special tokens
    added), token ids as they are."""
    return [list(p) if isinstance(p, list) else tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]


def prompt_texts(tokenizer, prompts: Sequence[Prompt]) -> list[str]:
    """Each prompt as text (token ids decoded, special tokens kept: the text the model saw)."""
    return [p if isinstance(p, str) else tokenizer.decode(p) for p in prompts]


def left_padded(prompt_ids: list[list[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``[B, P]`` token ids left-padded with ``pad`` to the longest, and their mask (1 on real tokens)."""
    longest = max(1, max(len(p) for p in prompt_ids))
    ids = torch.full((len(prompt_ids), longest), pad, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(prompt_ids):
        if row:
            ids[i, -len(row):] = torch.tensor(row, dtype=torch.long)
            mask[i, -len(row):] = 1
    return ids, mask


def save_version(model, directory: Path, version: int) -> Path:
    """``model`` saved as ``directory/v{version}`` (a LoRA model: its adapter; else a checkpoint),
    the versions before it removed; returns the new version's directory."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"v{version}"
    model.save_pretrained(path)
    for old in directory.glob("v*"):
        if old != path:
            shutil.rmtree(old, ignore_errors=True)
    return path
