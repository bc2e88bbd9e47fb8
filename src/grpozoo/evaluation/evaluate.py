"""Sampling a task's held-out prompts and scoring them with the task's verifier."""

from __future__ import annotations

from typing import Any

import torch

from grpozoo.evaluation.metrics import mean_and_stderr, pass_at_k
from grpozoo.generation import HFGenerator, SamplingParams
from grpozoo.tasks.base import Task, render_prompt


@torch.no_grad()
def evaluate(
    model,
    tokenizer,
    task: Task,
    samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    seed: int = 1234,
    batch_size: int = 32,
    progress=None,
) -> dict[str, Any]:
    """Accuracy (mean verifier success over all samples, with its standard error over prompts),
    pass@k for k = 1, 2, 4, … ≤ ``samples``, mean completion length and truncation rate.

    Sampling is seeded with ``seed`` inside a forked RNG, so the same model gives the same numbers
    and the caller's random state is untouched.
    """
    generator = HFGenerator(model, tokenizer)
    params = SamplingParams(max_new_tokens, temperature)
    rows = task.eval_rows
    per_chunk = max(1, batch_size // samples)
    correct_per_prompt: list[int] = []
    lengths: list[float] = []
    truncated: list[float] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            prompts = [render_prompt(tokenizer, task.messages(r)) for r in chunk]
            batch = generator.generate(prompts, chunk, samples, params)
            scores = [task.score(c, r) >= 1.0 for c, r in zip(batch.completions, batch.examples, strict=True)]
            for i in range(len(chunk)):
                correct_per_prompt.append(sum(scores[i * samples : (i + 1) * samples]))
            lengths += batch.completion_lengths.float().tolist()
            truncated += batch.truncated.float().tolist()
            if progress is not None:
                progress(len(chunk))
    accuracy, stderr = mean_and_stderr([c / samples for c in correct_per_prompt])
    result: dict[str, Any] = {
        "prompts": len(rows),
        "samples_per_prompt": samples,
        "accuracy": accuracy,
        "accuracy_stderr": stderr,
        "mean_length": sum(lengths) / len(lengths),
        "truncation_rate": sum(truncated) / len(truncated),
    }
    k = 1
    while k <= samples:
        result[f"pass@{k}"] = sum(pass_at_k(samples, c, k) for c in correct_per_prompt) / len(rows)
        k *= 2
    return result


def evaluate_held_out(model, tokenizer, task: Task, cfg) -> dict[str, Any]:
    """:func:`evaluate` with a run configuration's ``eval`` section and generation budget, so
    ``grpozoo train`` and ``grpozoo eval`` measure with the same prompts, seed and settings."""
    e = cfg.eval
    return evaluate(model, tokenizer, task, samples=e.samples, temperature=e.temperature,
                    max_new_tokens=cfg.rollout.max_new_tokens, seed=e.seed)
