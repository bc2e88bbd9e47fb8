"""Sampling a task's held-out prompts and scoring them with the task's verifier."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from grpozoo.evaluation.metrics import (
    calibration_auc,
    calibration_auc_within_groups,
    histogram,
    maj_at_k,
    mean_and_stderr,
    pass_at_k,
    pass_hat_k,
    percentile,
    powers_of_two_up_to,
)
from grpozoo.generation import HFGenerator, SamplingParams
from grpozoo.generation.episodes import with_tools
from grpozoo.rollouts import Rollouts
from grpozoo.tasks.base import Task, render_prompt

LENGTH_PERCENTILES = (10, 25, 50, 75, 90)
LENGTH_BINS = 10


@dataclass
class EvalSamples:
    """Per-sample facts of a held-out evaluation, prompt-major (prompt i's samples are
    ``i*samples … (i+1)*samples − 1``)."""

    samples: int  # per prompt
    max_new_tokens: int
    correct: list[bool] = field(default_factory=list)
    answers: list[str | None] = field(default_factory=list)  # the task's extracted answer
    lengths: list[int] = field(default_factory=list)  # completion tokens, EOS included
    truncated: list[bool] = field(default_factory=list)
    mean_logprobs: list[float] = field(default_factory=list)  # mean sampling log-prob per token
    entropy_sums: list[float] = field(default_factory=list)  # summed token entropy (nats)

    @property
    def prompts(self) -> int:
        return len(self.correct) // self.samples

    def add(self, batch: Rollouts, task: Task) -> None:
        """Append a generated, not yet scored batch."""
        mask = batch.completion_mask.float()
        lengths = mask.sum(dim=1)
        # a task may score a batch at once (e.g. programs run in parallel): ``score_many``
        score_many = getattr(task, "score_many", None)
        if score_many is not None:
            scores = score_many(batch.completions, batch.examples)
        else:
            scores = [task.score(c, r) for c, r in zip(batch.completions, batch.examples, strict=True)]
        self.correct += [score >= 1.0 for score in scores]
        self.answers += [task.extract(c) for c in batch.completions]
        self.lengths += [int(n) for n in lengths.tolist()]
        self.truncated += [bool(t) for t in batch.truncated.tolist()]
        self.mean_logprobs += ((batch.sampling_logprobs * mask).sum(dim=1) / lengths.clamp(min=1)).tolist()
        entropies = batch.entropies if batch.entropies is not None else torch.full_like(mask, float("nan"))
        self.entropy_sums += (entropies * mask).sum(dim=1).tolist()

    def extend(self, other: EvalSamples) -> None:
        """Append another evaluation's samples (same samples per prompt), e.g. of another task."""
        if other.samples != self.samples:
            raise ValueError(f"cannot join {other.samples} samples per prompt to {self.samples}")
        self.max_new_tokens = max(self.max_new_tokens, other.max_new_tokens)
        for name in ("correct", "answers", "lengths", "truncated", "mean_logprobs", "entropy_sums"):
            getattr(self, name).extend(getattr(other, name))


def accuracy_per_1k_tokens(accuracy: float, mean_length: float) -> float:
    """Length efficiency: right answers per 1,000 completion tokens, ``1000 · accuracy / mean_length``
    (NaN without tokens). The trade-off the two-stage recipe of Yoshihara, Yamaguchi & Inoue 2025, "A
    Practical Two-Stage Recipe for Mathematical LLMs: Maximizing Accuracy with SFT and Efficiency with
    Reinforcement Learning" (arXiv:2507.08267) measures: its GRPO stage keeps the accuracy of the SFT
    stage with shorter solutions, which raises this figure."""
    return 1000.0 * accuracy / mean_length if mean_length > 0 else float("nan")


def summarize(s: EvalSamples) -> dict[str, Any]:
    """Every held-out metric of a set of samples (see :func:`evaluate` for what each key means)."""
    n, prompts = s.samples, s.prompts
    per_prompt = [range(i * n, (i + 1) * n) for i in range(prompts)]
    right = [sum(s.correct[j] for j in rows) for rows in per_prompt]
    accuracy, stderr = mean_and_stderr([c / n for c in right])
    tokens = sum(s.lengths)
    result: dict[str, Any] = {
        "prompts": prompts,
        "samples_per_prompt": n,
        "accuracy": accuracy,
        "accuracy_stderr": stderr,
        "mean_length": sum(s.lengths) / len(s.lengths),
        "truncation_rate": sum(s.truncated) / len(s.truncated),
    }
    result["accuracy_per_1k_tokens"] = accuracy_per_1k_tokens(accuracy, result["mean_length"])
    ks = powers_of_two_up_to(n)
    for k in ks:
        result[f"pass@{k}"] = sum(pass_at_k(n, c, k) for c in right) / prompts
    for k in ks:
        result[f"maj@{k}"] = (
            sum(
                maj_at_k([s.answers[j] for j in rows], [s.correct[j] for j in rows], k) for rows in per_prompt
            )
            / prompts
        )
    for k in ks:
        result[f"pass^{k}"] = sum(pass_hat_k(n, c, k) for c in right) / prompts
    result["answered_rate"] = sum(a is not None for a in s.answers) / len(s.answers)
    for q in LENGTH_PERCENTILES:
        result[f"length_p{q}"] = percentile(s.lengths, q)
    result["length_min"] = min(s.lengths)
    result["length_max"] = max(s.lengths)
    result["length_histogram"] = histogram(s.lengths, LENGTH_BINS, upper=s.max_new_tokens)
    result["mean_entropy"] = sum(s.entropy_sums) / max(tokens, 1)
    result["mean_logprob"] = sum(s.mean_logprobs) / len(s.mean_logprobs)
    result["calibration_auc"] = calibration_auc(s.mean_logprobs, s.correct)
    groups = [i // n for i in range(len(s.correct))]
    result["calibration_auc_within_prompt"] = calibration_auc_within_groups(
        s.mean_logprobs, s.correct, groups
    )
    return result


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
    rollout=None,
) -> dict[str, Any]:
    """Sample ``samples`` completions of every held-out prompt and measure them (multi-turn episodes
    with the tools a run's ``rollout`` section names, if given).

    Keys (k = 1, 2, 4, … ≤ ``samples``, and ``samples`` itself):

    * ``accuracy`` — share of all samples the task's verifier judges right, with
      ``accuracy_stderr`` its standard error over prompts; ``prompts``, ``samples_per_prompt``;
    * ``pass@k`` — chance that at least one of k samples is right (unbiased estimator);
    * ``maj@k`` — accuracy of the majority vote over the extracted answers of k samples;
    * ``pass^k`` — chance that all k samples are right (reliability);
    * ``answered_rate`` — share of samples from which the task extracts an answer;
    * ``mean_length``, ``length_p10`` … ``length_p90``, ``length_min``, ``length_max`` (tokens) and
      ``length_histogram`` (``edges``, ``counts``; bins from 0 to ``max_new_tokens``);
    * ``truncation_rate`` — share of samples that hit ``max_new_tokens`` before EOS;
    * ``accuracy_per_1k_tokens`` — length efficiency, ``1000 · accuracy / mean_length``
      (:func:`accuracy_per_1k_tokens`);
    * ``mean_entropy`` — mean entropy of the sampling distribution per generated token (nats);
    * ``mean_logprob`` — mean over samples of the per-token log-prob of the sample (the model's
      own confidence in it);
    * ``calibration_auc`` — AUC of that confidence at telling right samples from wrong ones
      (0.5: no better than chance; NaN when all samples are right or all wrong), and
      ``calibration_auc_within_prompt`` — the same over pairs of samples of the same prompt.

    Sampling is seeded with ``seed`` inside a forked RNG, so the same model gives the same numbers
    and the caller's random state is untouched.
    """
    return summarize(
        collect(model, tokenizer, task, samples, temperature, max_new_tokens, seed, batch_size, progress, rollout)
    )


@torch.no_grad()
def collect(
    model,
    tokenizer,
    task: Task,
    samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 32,
    seed: int = 1234,
    batch_size: int = 32,
    progress=None,
    rollout=None,
) -> EvalSamples:
    """The samples :func:`evaluate` measures, scored by the task, before they are summarized. With
    ``rollout`` (a run's section naming tools) the samples are multi-turn episodes, as in training."""
    generator = HFGenerator(model, tokenizer)
    if rollout is not None:
        generator = with_tools(generator, tokenizer, rollout)
    params = SamplingParams(max_new_tokens, temperature)
    rows = task.eval_rows
    per_chunk = max(1, batch_size // samples)
    collected = EvalSamples(samples=samples, max_new_tokens=max_new_tokens)
    # manual_seed seeds every CUDA device too: fork (and give back) all of their states
    cuda_devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(seed)
        for start in range(0, len(rows), per_chunk):
            chunk = rows[start : start + per_chunk]
            prompts = [render_prompt(tokenizer, task.messages(r)) for r in chunk]
            collected.add(generator.generate(prompts, chunk, samples, params), task)
            if progress is not None:
                progress(len(chunk))
    return collected


def evaluate_held_out(model, tokenizer, task: Task, cfg, progress=None) -> dict[str, Any]:
    """:func:`evaluate` with a run configuration's ``eval`` section and generation budget, so
    ``grpozoo train`` and ``grpozoo eval`` measure with the same prompts, seed and settings."""
    e = cfg.eval
    return evaluate(
        model,
        tokenizer,
        task,
        samples=e.samples,
        temperature=e.temperature,
        max_new_tokens=cfg.rollout.max_new_tokens,
        seed=e.seed,
        progress=progress,
        rollout=cfg.rollout,
    )
