"""A whole run: ``fit`` trains a :class:`~grpozoo.training.trainer.Trainer` to its step budget with
a progress bar, held-out evaluation before and after, periodic checkpoints, and a clean stop on
Ctrl-C."""

from __future__ import annotations

import signal
import threading
from typing import Any

from grpozoo.training import checkpoint as ckpt
from grpozoo.training.trainer import Trainer


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

    from grpozoo.reporting.loggers import close_loggers, loggers_of

    cfg = trainer.cfg
    console = trainer.console
    summary: dict[str, Any] = {}
    loggers_of(trainer)  # open TensorBoard / trackio first: a missing package fails before any work
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
    close_loggers(trainer)
    _say(console, f"run directory: {trainer.run_dir}")
    return summary


def _fmt_eval(result: dict[str, Any]) -> str:
    return (f"{result['accuracy']:.3f} ± {result['accuracy_stderr']:.3f} "
            f"({result['prompts']} prompts × {result['samples_per_prompt']} samples)")


def _say(console, text: str) -> None:
    if console is not None:
        console.print(text)
