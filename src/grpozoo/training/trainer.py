"""The trainer: one short, linear step — select, generate, reward, advantages, learn, log.

Every algorithmic choice is a component looked up by name from the run configuration; the loop
has no branch per algorithm.
"""

from __future__ import annotations

import copy
import signal
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import torch

from grpozoo import registry
from grpozoo.algos.aggregation import BatchTotals
from grpozoo.algos.groups import group_std
from grpozoo.config import RunConfig, save_config
from grpozoo.generation import HFGenerator, SamplingParams
from grpozoo.reporting.metrics import append_jsonl, read_jsonl, rewind_jsonl
from grpozoo.reporting.plots import plot_reward_curve
from grpozoo.rewards import RewardModel
from grpozoo.rollouts import Rollouts
from grpozoo.tasks import make_task
from grpozoo.tasks.base import render_prompt
from grpozoo.training import checkpoint as ckpt
from grpozoo.training.forward import completion_logprobs, micro_batches
from grpozoo.training.model import load_policy

# Warn when a step's batch carries almost no learning signal.
TRUNCATION_WARNING = 0.9
ZERO_VARIANCE_WARNING = 0.9
SIGNAL_PATIENCE = 3  # steps in a row before warning


def default_run_dir(cfg: RunConfig) -> Path:
    task = Path(cfg.task.name).stem
    return Path("runs") / f"{cfg.recipe}-{task}-{datetime.now():%Y%m%d-%H%M%S}"


class Trainer:
    """Builds every component from ``cfg`` and runs the steps; ``resume`` continues a run directory."""

    def __init__(
        self,
        cfg: RunConfig,
        run_dir: Path | None = None,
        resume: bool = False,
        reward_functions: dict[str, Callable[..., Any]] | None = None,
        console=None,
    ):
        self.cfg = cfg
        self.console = console
        self.run_dir = Path(run_dir or cfg.output_dir or default_run_dir(cfg))
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        algo = cfg.algorithm
        self.advantage_fn = registry.advantages.get(algo.advantage.name)
        self.loss_fn = registry.losses.get(algo.loss.name)
        self.aggregate = registry.aggregations.get(algo.aggregation)
        self.kl_fn = registry.kl_estimators.get(algo.kl.estimator)
        registry.check_params("advantage estimator", algo.advantage.name, self.advantage_fn, algo.advantage.params, 2)
        registry.check_params("policy loss", algo.loss.name, self.loss_fn, algo.loss.params, 4)
        selector_cls = registry.selectors.get(algo.selector.name)
        self.task = make_task(cfg.task)
        self.rewards = RewardModel(cfg.rewards, reward_functions or {})
        self.selector = selector_cls(len(self.task.train_rows), seed=cfg.train.seed, **algo.selector.params)

        self.step = 0
        self.history: list[dict[str, Any]] = []  # metrics.jsonl, kept in memory
        self.evals: list[dict[str, Any]] = []  # eval.jsonl, kept in memory
        checkpoint = ckpt.latest_checkpoint(self.run_dir) if resume else None
        if resume and checkpoint is None:
            raise FileNotFoundError(f"--resume: {str(self.run_dir)!r} holds no checkpoint to resume from")
        if not resume and (self.run_dir / "metrics.jsonl").exists():
            raise FileExistsError(
                f"run directory {str(self.run_dir)!r} already holds a run: continue it with "
                f"--resume {self.run_dir}, or choose another --output"
            )
        if checkpoint is None:
            torch.manual_seed(cfg.train.seed)
        self.model, self.tokenizer = load_policy(
            cfg.model, cfg.train.device, init_from=checkpoint / "model" if checkpoint else None
        )
        self.reference = self._frozen_reference() if algo.kl.coef > 0 and not cfg.model.lora.enabled else None
        self.generator = HFGenerator(self.model, self.tokenizer)
        r = cfg.rollout
        self.sampling = SamplingParams(r.max_new_tokens, r.temperature, r.top_p, r.top_k)
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.AdamW(
            trainable, lr=cfg.train.learning_rate, weight_decay=cfg.train.weight_decay
        )
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            cfg.train.lr_scheduler,
            self.optimizer,
            num_warmup_steps=cfg.train.warmup_steps,
            num_training_steps=cfg.train.steps * algo.num_iterations,
        )
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.run_dir / "config.yaml")
        if checkpoint is not None:
            self._restore(checkpoint)

    # ----------------------------------------------------------------------------- set-up helpers
    def _frozen_reference(self):
        reference = copy.deepcopy(self.model).eval()
        for p in reference.parameters():
            p.requires_grad_(False)
        return reference

    def _restore(self, checkpoint: Path) -> None:
        state = ckpt.load_trainer_state(checkpoint)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.selector.load_state_dict(state["selector"])
        ckpt.set_rng_state(state["rng"])
        self.step = state["step"]
        for name in ("metrics.jsonl", "samples.jsonl", "eval.jsonl"):
            rewind_jsonl(self.run_dir / name, self.step)
        self.history = read_jsonl(self.run_dir / "metrics.jsonl")
        self.evals = read_jsonl(self.run_dir / "eval.jsonl")

    def save(self) -> Path:
        state = {
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "selector": self.selector.state_dict(),
        }
        return ckpt.save_checkpoint(
            self.run_dir, self.step, self.model, self.tokenizer, state, self.cfg.train.keep_checkpoints
        )

    def warn(self, message: str) -> None:
        if self.console is not None:
            self.console.print(f"[bold yellow]WARNING[/] step {self.step}: {message}")
        else:
            warnings.warn(f"step {self.step}: {message}", stacklevel=2)

    # ----------------------------------------------------------------------------- the step
    def train_step(self) -> dict[str, Any]:
        """One step: select, generate, reward, advantages, learn, log. Returns the step's metrics."""
        self.step += 1
        start = time.perf_counter()
        rows = self.selector.next(self.cfg.rollout.prompts_per_step)
        batch = self.generate(rows)
        generated = time.perf_counter()
        self.score(batch)
        self.selector.update(rows, batch)
        algo = self.cfg.algorithm
        batch.advantages = self.advantage_fn(batch.rewards, batch.group_ids, batch, **algo.advantage.params)
        learn_metrics = self.learn(batch)
        end = time.perf_counter()
        metrics = {
            "step": self.step,
            **batch_metrics(batch, self.rewards.parts),
            **learn_metrics,
            "lr": self.scheduler.get_last_lr()[0],
            "time/generation_s": generated - start,
            "time/learning_s": end - generated,
            "time/step_s": end - start,
            "tokens_per_s": float(batch.completion_mask.sum()) / (generated - start),
        }
        self.history.append(metrics)
        self.check_signal()
        append_jsonl(self.run_dir / "metrics.jsonl", metrics)
        append_jsonl(self.run_dir / "samples.jsonl", *(sample_record(self.step, batch, i) for i in range(batch.batch_size)))
        return metrics

    def generate(self, rows: list[int]) -> Rollouts:
        examples = [self.task.train_rows[i] for i in rows]
        prompts = [render_prompt(self.tokenizer, self.task.messages(r)) for r in examples]
        return self.generator.generate(prompts, examples, self.cfg.rollout.group_size, self.sampling)

    def score(self, batch: Rollouts) -> None:
        batch.task_scores = torch.tensor(
            [self.task.score(c, r) for c, r in zip(batch.completions, batch.examples, strict=True)]
        )
        columns: dict[str, list[Any]] = {"task_score": batch.task_scores.tolist()}
        for key in batch.examples[0]:
            if key not in ("prompt", "messages") and all(key in e for e in batch.examples):
                columns[key] = [e[key] for e in batch.examples]
        batch.rewards, batch.reward_parts = self.rewards(batch.completions, batch.prompts, columns)

    def learn(self, batch: Rollouts) -> dict[str, float]:
        """``num_iterations`` optimiser steps on the batch (old log-probs recomputed when > 1)."""
        algo = self.cfg.algorithm
        totals = BatchTotals.of(batch.completion_mask, self.cfg.rollout.max_new_tokens, batch.group_ids)
        if algo.num_iterations > 1:
            batch.old_logprobs = self.logprobs_without_grad(batch, self.model)
        if algo.kl.coef > 0:
            batch.ref_logprobs = self.reference_logprobs(batch)
        chunks = [mb for _, mb in micro_batches(batch, self.cfg.train.micro_batch_tokens)]
        trainable = [p for p in self.model.parameters() if p.requires_grad]
        self.model.train()
        for _ in range(algo.num_iterations):
            self.optimizer.zero_grad(set_to_none=True)
            sums = self.accumulate_gradients(chunks, totals)
            grad_norm = torch.nn.utils.clip_grad_norm_(trainable, self.cfg.train.max_grad_norm)
            self.optimizer.step()
            self.scheduler.step()
        out = {"loss": sums.pop("loss"), "grad_norm": float(grad_norm)}
        out.update({name: value / max(totals.num_tokens, 1) for name, value in sums.items()})
        return out

    def accumulate_gradients(self, chunks: list[Rollouts], totals: BatchTotals) -> dict[str, float]:
        """Backpropagate the loss of each micro-batch; the gradients add up to the whole batch's,
        because aggregations normalise by whole-batch ``totals``. Returns the loss and the masked
        sums of the per-token diagnostics."""
        algo = self.cfg.algorithm
        sums: dict[str, float] = defaultdict(float)
        for mb in chunks:
            mask = mb.completion_mask.float()
            logp, entropy = completion_logprobs(self.model, mb, self.cfg.rollout.temperature, with_entropy=True)
            old = mb.old_logprobs if mb.old_logprobs is not None else logp.detach()
            per_token, diagnostics = self.loss_fn(logp, old, mb.advantages, mask, mb, **algo.loss.params)
            diagnostics["entropy"] = entropy
            if algo.kl.coef > 0:
                kl = self.kl_fn(logp, mb.ref_logprobs)
                per_token = per_token + algo.kl.coef * kl
                diagnostics["kl"] = kl.detach()
            loss = self.aggregate(per_token, mask, mb.group_ids, totals)
            loss.backward()
            sums["loss"] += loss.item()
            for name, value in diagnostics.items():
                sums[name] += float((value * mask).sum())
        return sums

    @torch.no_grad()
    def logprobs_without_grad(self, batch: Rollouts, model) -> torch.Tensor:
        """Log-probs ``[B, T]`` of the whole batch under ``model``, without building a graph."""
        out = torch.zeros_like(batch.sampling_logprobs)
        for rows, mb in micro_batches(batch, self.cfg.train.micro_batch_tokens):
            logp, _ = completion_logprobs(model, mb, self.cfg.rollout.temperature)
            out[rows, : logp.shape[1]] = logp.to(out.dtype)
        return out

    def reference_logprobs(self, batch: Rollouts) -> torch.Tensor:
        """Under LoRA the reference is the base model with adapters disabled: no second copy."""
        if self.reference is not None:
            return self.logprobs_without_grad(batch, self.reference)
        with self.model.disable_adapter():
            return self.logprobs_without_grad(batch, self.model)

    def check_signal(self) -> None:
        """Warn loudly when nearly all completions are truncated, or nearly all groups have zero
        reward variance, on the last ``SIGNAL_PATIENCE`` steps (one unlucky batch is normal)."""
        window = self.history[-SIGNAL_PATIENCE:]
        if len(window) < SIGNAL_PATIENCE:
            return
        metrics = window[-1]
        if all(m["truncation_rate"] >= TRUNCATION_WARNING for m in window):
            self.warn(
                f"{metrics['truncation_rate']:.0%} of completions hit rollout.max_new_tokens="
                f"{self.cfg.rollout.max_new_tokens} without finishing, {SIGNAL_PATIENCE} steps in a row: "
                f"raise it or ask for shorter answers"
            )
        if all(m["zero_variance_groups"] >= ZERO_VARIANCE_WARNING for m in window):
            self.warn(
                f"{metrics['zero_variance_groups']:.0%} of groups have the same reward for every completion, "
                f"{SIGNAL_PATIENCE} steps in a row, so they carry no learning signal: the task is too hard "
                f"or too easy for this model (mean reward {metrics['reward/mean']:.2f}); "
                f"pick another difficulty or raise rollout.group_size"
            )

    # ----------------------------------------------------------------------------- evaluation
    def evaluate(self) -> dict[str, Any]:
        from grpozoo.evaluation import evaluate_held_out

        record = {"step": self.step, **evaluate_held_out(self.model, self.tokenizer, self.task, self.cfg)}
        self.evals.append(record)
        append_jsonl(self.run_dir / "eval.jsonl", record)
        return record

    def plot(self) -> None:
        if self.history:
            title = f"{self.cfg.recipe} on {self.task.name} ({Path(self.cfg.model.name).name})"
            plot_reward_curve(self.history, self.evals, self.run_dir / "reward_curve.png", title)


def batch_metrics(batch: Rollouts, parts) -> dict[str, float]:
    """Per-step statistics of the sampled batch (rewards, accuracy, lengths, signal)."""
    rewards = batch.rewards
    std_per_group = group_std(rewards, batch.group_ids)
    groups = batch.group_ids.unique()
    zero_variance = sum(float(std_per_group[batch.group_ids == g][0] < 1e-6) for g in groups) / len(groups)
    out = {
        "reward/mean": float(rewards.mean()),
        "reward/std": float(rewards.std()) if len(rewards) > 1 else 0.0,
        "accuracy": float((batch.task_scores >= 1.0).float().mean()),
        "completion_length": float(batch.completion_lengths.float().mean()),
        "truncation_rate": float(batch.truncated.float().mean()),
        "zero_variance_groups": zero_variance,
    }
    for part in parts:
        values = batch.reward_parts[part.name]
        known = values[~values.isnan()]
        out[f"reward/{part.name}"] = float(known.mean()) if len(known) else float("nan")
    return out


def sample_record(step: int, batch: Rollouts, i: int) -> dict[str, Any]:
    return {
        "step": step,
        "group": int(batch.group_ids[i]),
        "prompt": batch.prompts[i],
        "completion": batch.completions[i],
        "answer": batch.examples[i].get("answer"),
        "reward": float(batch.rewards[i]),
        "parts": {k: (None if v[i].isnan() else float(v[i])) for k, v in batch.reward_parts.items()},
        "advantage": float(batch.advantages[i].mean()),
        "truncated": bool(batch.truncated[i]),
    }


class StopAfterStep:
    """While active, the first Ctrl-C asks the loop to stop once the current step is complete (so
    the checkpoint holds a consistent state); a second Ctrl-C interrupts at once."""

    def __init__(self, console):
        self.console = console
        self.requested = False

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        _say(self.console, "[bold]stopping after this step[/] and saving a checkpoint (Ctrl-C again to abort now)")

    def __enter__(self) -> StopAfterStep:
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGINT, self._handle) if in_main_thread else None
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


def fit(trainer: Trainer, show_progress: bool = True) -> dict[str, Any]:
    """Run ``trainer`` to ``train.steps`` with a progress bar, held-out evaluation at start and end,
    checkpoints every ``train.checkpoint_every`` steps, and a checkpoint when stopped with Ctrl-C
    (after the current step completes; then KeyboardInterrupt is raised).

    Returns ``{"metrics": last step's metrics, "eval_start": …, "eval_end": …}``.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    cfg = trainer.cfg
    console = trainer.console
    summary: dict[str, Any] = {}
    if cfg.eval.at_start and trainer.step == 0:
        summary["eval_start"] = trainer.evaluate()
        _say(console, f"held-out accuracy before training: {_fmt_eval(summary['eval_start'])}")
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("reward {task.fields[reward]}"), TextColumn("acc {task.fields[accuracy]}"),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
        console=console, disable=not show_progress,
    )
    with progress, StopAfterStep(console) as stop:
        bar = progress.add_task(cfg.recipe, total=cfg.train.steps, completed=trainer.step, reward="-", accuracy="-")
        while trainer.step < cfg.train.steps:
            metrics = trainer.train_step()
            summary["metrics"] = metrics
            progress.update(bar, completed=trainer.step, reward=f"{metrics['reward/mean']:.3f}",
                            accuracy=f"{metrics['accuracy']:.2f}")
            trainer.plot()
            if trainer.step % cfg.train.checkpoint_every == 0 or stop.requested:
                path = trainer.save()
            if stop.requested:
                progress.stop()
                _say(console, f"stopped at step {trainer.step}; checkpoint {path}. "
                              f"Continue with: grpozoo train --resume {trainer.run_dir}")
                raise KeyboardInterrupt
    if ckpt.latest_checkpoint(trainer.run_dir) != ckpt.checkpoint_dir(trainer.run_dir, trainer.step):
        trainer.save()
    if cfg.eval.at_end:
        summary["eval_end"] = trainer.evaluate()
        _say(console, f"held-out accuracy after training:  {_fmt_eval(summary['eval_end'])}")
        trainer.plot()
    _say(console, f"run directory: {trainer.run_dir}")
    return summary


def _fmt_eval(result: dict[str, Any]) -> str:
    return (f"{result['accuracy']:.3f} ± {result['accuracy_stderr']:.3f} "
            f"({result['prompts']} prompts × {result['samples_per_prompt']} samples)")


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text)
