"""``grpozoo sft``: supervised fine-tuning on a task's worked solutions, the first stage of the two-stage
recipe of Yoshihara, Yamaguchi & Inoue 2025, "A Practical Two-Stage Recipe for Mathematical LLMs:
Maximizing Accuracy with SFT and Efficiency with Reinforcement Learning" (arXiv:2507.08267).

The paper first fine-tunes on worked solutions for many epochs (up to 10 were crucial) to push
accuracy, then runs GRPO with a length-aware reward, which mostly shortens the solutions while
keeping that accuracy (the ``sft_grpo`` recipe). This module is the first stage: every train row of
the task with a worked ``solution`` (reasoning-gym tasks with solvers carry one,
:mod:`grpozoo.tasks.solutions`; a dataset maps its column to it with ``task.columns``) becomes a
demonstration: the row's prompt in the model's chat template, then the solution and EOS as the
completion. The loss is the mean negative log-likelihood of the completion tokens
(:func:`sft_loss`), on the learner's own forward (the output layer only over completion tokens).

What a run writes into its output directory:

* ``sft_metrics.jsonl``: one record per optimiser step (loss, tokens, gradient norm, learning rate);
* ``sft_eval.jsonl``: the held-out evaluation before and after (``eval.at_start`` / ``eval.at_end``);
* ``sft_config.yaml``: the resolved configuration;
* ``model/``: a standalone checkpoint (LoRA merged into the base weights) with its tokenizer, which
  ``grpozoo train --model DIR/model`` starts from. Ctrl-C stops after the current step (a second
  one at once) and still writes ``model/`` with what was trained so far.

What differs from the paper: it fine-tunes all weights of a 14B model on 7,900 long R1 traces; here
the run's own model settings apply (LoRA by default, merged at the end) and the demonstrations are
the task's short worked solutions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.autograd.graph import increment_version

from grpozoo.algos.masked import keep_real
from grpozoo.console import say
from grpozoo.errors import ConfigError
from grpozoo.generation.samples import prompt_token_ids, rollouts_from_samples
from grpozoo.rollouts import Rollouts
from grpozoo.tasks.base import Task, render_prompt
from grpozoo.tasks.solutions import how_to_give_solutions

# the recipe whose configuration an SFT run takes when none is named: the GRPO stage that follows
# it, so both stages evaluate with the same generation budget
SFT_RECIPE = "sft_grpo"


def sft_loss(logp: torch.Tensor, mask: torch.Tensor, num_tokens: int | None = None) -> torch.Tensor:
    """Supervised fine-tuning loss, the first stage of Yoshihara, Yamaguchi & Inoue 2025, "A
    Practical Two-Stage Recipe for Mathematical LLMs: Maximizing Accuracy with SFT and Efficiency
    with Reinforcement Learning" (arXiv:2507.08267): the mean negative log-likelihood of the
    demonstration's tokens, ``−Σ logp·mask / N`` (token-mean).

    Shapes: ``logp [B, T]`` log-probs of the completion (demonstration) tokens, ``mask [B, T]`` 1 on
    them, 0 on padding; returns a scalar. Prompt tokens never reach it (``logp`` covers the
    completion only) and padding is ignored whatever ``logp`` holds there. ``N`` is ``num_tokens``,
    the masked tokens of the whole optimiser batch, so the losses of its micro-batches add up to
    the batch's loss; by default the tokens of this ``mask``.
    """
    total = int((mask > 0).sum()) if num_tokens is None else num_tokens
    return -keep_real(logp, mask).sum() / max(total, 1)


def solution_of(row: dict[str, Any]) -> str | None:
    """The worked solution of a task row (its ``solution`` column, stripped), or None."""
    solution = row.get("solution")
    return solution.strip() if isinstance(solution, str) and solution.strip() else None


def demonstration_rows(task: Task) -> list[dict[str, Any]]:
    """The train rows of ``task`` that have a worked solution; a clear error when none has."""
    rows = [row for row in task.train_rows if solution_of(row) is not None]
    if rows:
        return rows
    raise ConfigError(
        f"grpozoo sft learns from worked solutions, but no train row of task {task.name!r} has one "
        + how_to_give_solutions(task.train_rows)
    )


def demonstration_batch(tokenizer, task: Task, rows: list[dict[str, Any]]) -> Rollouts:
    """A :class:`Rollouts` batch ``[B]`` of demonstrations: each row's prompt (chat template,
    left-padded) and its solution followed by the tokenizer's EOS as the completion (right-padded,
    ``completion_mask`` 1 on the solution and EOS). One group per row; the "sampling" log-probs are
    0 (a demonstration is certain)."""
    eos = tokenizer.eos_token_id
    prompts = [render_prompt(tokenizer, task.messages(row)) for row in rows]
    completions = [tokenizer(solution_of(row), add_special_tokens=False)["input_ids"] + [eos] for row in rows]
    return rollouts_from_samples(
        tokenizer, prompts, prompt_token_ids(tokenizer, prompts), rows, [1] * len(rows),
        [(ids, [0.0] * len(ids)) for ids in completions], [eos], 0,
    )


def sft_step(model, optimizer, scheduler, batch: Rollouts, train) -> dict[str, float]:
    """One optimiser step on ``batch``: :func:`sft_loss` over micro-batches of at most
    ``train.micro_batch_tokens`` tokens (normalised by the whole batch's tokens, so the split never
    changes the gradient), gradient clipping at ``train.max_grad_norm``, the optimiser and scheduler
    steps. Returns the batch's loss (mean NLL per token), its tokens, the gradient norm and the
    learning rate the step used."""
    from grpozoo.training.forward import completion_logprobs, micro_batches
    from grpozoo.training.lora_linear import fused_lora

    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]
    tokens = int(batch.completion_mask.sum())
    device_type = next(model.parameters()).device.type
    optimizer.zero_grad(set_to_none=True)
    loss_sum = 0.0
    with fused_lora(model):  # LoRA layers as one autograd function each
        for _, mb in micro_batches(batch, train.micro_batch_tokens):
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=train.compute_dtype == "bfloat16"):
                logp, _ = completion_logprobs(model, mb)
            loss = sft_loss(logp, mb.completion_mask.to(logp.device), num_tokens=tokens)
            loss.backward()
            loss_sum += float(loss.detach())
    grad_norm = float(torch.nn.utils.clip_grad_norm_(trainable, train.max_grad_norm))
    lr = optimizer.param_groups[0]["lr"]
    optimizer.step()
    # the fused step writes the weights without counting it in their version counters, which caches
    # derived from the weights (the sampler's packed layers) check
    increment_version(trainable)
    scheduler.step()
    return {"loss": loss_sum, "tokens": tokens, "grad_norm": grad_norm, "lr": lr}


def sft_config(config_file: str | Path | None = None, overrides: list[str] | None = None,
               recipe: str | None = None, **shortcuts: Any):
    """The run configuration of an SFT run, as :func:`grpozoo.config.resolve_config` builds it, with
    the ``sft_grpo`` recipe's when neither ``recipe``, ``--set recipe=…`` nor the file names one."""
    from grpozoo.config import command_line_layer, load_yaml, resolve_config

    if recipe is None and "recipe" not in command_line_layer(overrides):
        named = load_yaml(config_file).get("recipe") if config_file else None
        recipe = None if named else SFT_RECIPE
    return resolve_config(config_file, overrides, recipe=recipe, **shortcuts)


def default_sft_dir(cfg) -> Path:
    from datetime import datetime

    return Path("runs") / f"sft-{Path(cfg.task.name).stem}-{datetime.now():%Y%m%d-%H%M%S}"


def save_model(model, tokenizer, folder: Path) -> Any:
    """Write ``model`` as a standalone checkpoint into ``folder`` (written aside and renamed once
    complete): a LoRA model merged into its base weights (peft's ``merge_and_unload``, in place),
    with the tokenizer and its chat template. Returns the model as saved (the merged one)."""
    from grpozoo.export import save_tokenizer
    from grpozoo.training.model import publish_checkpoint

    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()

    def write(partial: Path) -> None:
        model.save_pretrained(partial, safe_serialization=True)
        save_tokenizer(tokenizer, partial)

    publish_checkpoint(write, folder)
    return model


@dataclass
class SFTResult:
    """What :meth:`SFTRun.run` did: the output directory, the model as saved (merged), the steps and
    epochs it completed, the held-out evaluations (None when off) and the per-step metrics."""

    output: Path
    model: Any
    steps: int
    epochs: float
    eval_start: dict[str, Any] | None = None
    eval_end: dict[str, Any] | None = None
    metrics: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_dir(self) -> Path:
        return self.output / "model"


class SFTRun:
    """Supervised fine-tuning of ``cfg``'s model on ``cfg``'s task's worked solutions: ``epochs``
    passes over them in shuffled batches of ``batch_size`` demonstrations (one optimiser step
    each), with the run's learning rate, optimiser (AdamW by default), scheduler, seed, threads,
    device and micro-batch budget. Building it checks everything (task, solutions, output
    directory) and loads the model; :meth:`run` trains."""

    def __init__(self, cfg, output: str | Path | None = None, epochs: int = 3, batch_size: int = 8, console=None):
        from transformers import get_scheduler

        from grpozoo.tasks import make_task
        from grpozoo.training.model import check_trainable_dtype, load_policy
        from grpozoo.training.optimizers import build_optimizer

        if epochs < 1:
            raise ConfigError(f"--epochs {epochs}: give 1 or more")
        if batch_size < 1:
            raise ConfigError(f"--batch-size {batch_size}: give 1 or more")
        self.cfg, self.epochs, self.batch_size, self.console = cfg, epochs, batch_size, console
        self.output = Path(output or cfg.output_dir or default_sft_dir(cfg))
        for name in ("model", "sft_metrics.jsonl"):
            if (self.output / name).exists():
                raise FileExistsError(f"{str(self.output / name)!r} already exists: choose another --output")
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        check_trainable_dtype(cfg.model)
        self.task = make_task(cfg.task)
        self.rows = demonstration_rows(self.task)
        torch.manual_seed(cfg.train.seed)
        self.model, self.tokenizer = load_policy(cfg.model, cfg.train.device)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        train = cfg.train
        self.optimizer = build_optimizer(train.optimizer.name, train.optimizer.params, trainable,
                                         train.learning_rate, train.weight_decay)
        self.steps_per_epoch = -(-len(self.rows) // batch_size)
        self.total_steps = self.steps_per_epoch * epochs
        self.scheduler = get_scheduler(train.lr_scheduler, self.optimizer, num_warmup_steps=train.warmup_steps,
                                       num_training_steps=self.total_steps)
        self.output.mkdir(parents=True, exist_ok=True)

    def evaluate(self, stage: str, step: int) -> dict[str, Any]:
        from grpozoo.evaluation import evaluate_held_out
        from grpozoo.reporting.metrics import append_jsonl
        from grpozoo.training.fit import format_eval

        self.model.eval()
        result = {"stage": stage, "step": step, **evaluate_held_out(self.model, self.tokenizer, self.task, self.cfg)}
        append_jsonl(self.output / "sft_eval.jsonl", result)
        say(self.console, f"held-out accuracy {stage} SFT: {format_eval(result)}; mean length "
                          f"{result['mean_length']:.1f} tokens, {result['accuracy_per_1k_tokens']:.2f} per 1k tokens")
        return result

    def too_long_note(self) -> str | None:
        """A note when demonstrations are longer than ``rollout.max_new_tokens``: held-out
        evaluation and GRPO would cut the answers the model learns to write."""
        budget = self.cfg.rollout.max_new_tokens
        lengths = [len(self.tokenizer(solution_of(r), add_special_tokens=False)["input_ids"]) + 1 for r in self.rows]
        over = sum(n > budget for n in lengths)
        if not over:
            return None
        return (f"{over} of {len(lengths)} demonstrations are longer than rollout.max_new_tokens={budget} (the "
                f"longest {max(lengths)} tokens): the held-out evaluation cuts them; raise it, e.g. --set "
                f"rollout.max_new_tokens={max(lengths) + 16}, here and in the GRPO stage")

    def run(self, show_progress: bool = True) -> SFTResult:
        """Train, evaluate before and after, and save ``model/``. On Ctrl-C (after the current
        step; a second one at once) ``model/`` is saved with what was trained so far and
        KeyboardInterrupt is raised again."""
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        from grpozoo.config import save_config
        from grpozoo.reporting.metrics import append_jsonl
        from grpozoo.training.fit import StopAfterStep

        cfg, console = self.cfg, self.console
        save_config(cfg, self.output / "sft_config.yaml")
        note = self.too_long_note()
        if note:
            say(console, f"[bold]note:[/] {note}")
        result = SFTResult(self.output, self.model, 0, 0.0)
        if cfg.eval.at_start:
            result.eval_start = self.evaluate("before", 0)
        say(console, f"[bold]grpozoo sft[/] model={cfg.model.name} task={cfg.task.name}: {len(self.rows)} "
                     f"demonstrations × {self.epochs} epochs, {self.total_steps} steps of {self.batch_size} → "
                     f"{self.output}")
        progress = Progress(
            TextColumn("[bold]sft"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
            TextColumn("epoch {task.fields[epoch]}"), TextColumn("loss {task.fields[loss]}"),
            TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
            console=console, disable=not show_progress,
        )
        shuffle = torch.Generator().manual_seed(cfg.train.seed)
        interrupted = False
        try:
            with progress, StopAfterStep(console) as stop:
                bar = progress.add_task("sft", total=self.total_steps, epoch="-", loss="-")
                for epoch in range(self.epochs):
                    order = torch.randperm(len(self.rows), generator=shuffle).tolist()
                    for start in range(0, len(order), self.batch_size):
                        rows = [self.rows[i] for i in order[start : start + self.batch_size]]
                        began = time.perf_counter()
                        batch = demonstration_batch(self.tokenizer, self.task, rows)
                        metrics = sft_step(self.model, self.optimizer, self.scheduler, batch, cfg.train)
                        result.steps += 1
                        result.epochs = epoch + (start + len(rows)) / len(order)
                        record = {"step": result.steps, "epoch": round(result.epochs, 4), **metrics,
                                  "time/step_s": time.perf_counter() - began}
                        result.metrics.append(record)
                        append_jsonl(self.output / "sft_metrics.jsonl", record)
                        progress.update(bar, completed=result.steps, epoch=f"{result.epochs:.2f}",
                                        loss=f"{metrics['loss']:.4f}")
                        if stop.requested:
                            raise KeyboardInterrupt
        except KeyboardInterrupt:
            interrupted = True
        self.model = result.model = save_model(self.model, self.tokenizer, result.model_dir)
        if interrupted:
            say(console, f"stopped after step {result.steps} of {self.total_steps} ({result.epochs:.2f} epochs); "
                         f"saved what was trained so far to {result.model_dir}")
            raise KeyboardInterrupt
        say(console, f"saved {result.model_dir}: continue with grpozoo train --recipe {cfg.recipe} "
                     f"--model {result.model_dir}")
        if cfg.eval.at_end:
            result.eval_end = self.evaluate("after", result.steps)
        return result


__all__ = ["SFTResult", "SFTRun", "demonstration_batch", "demonstration_rows", "sft_config", "sft_loss", "sft_step"]
