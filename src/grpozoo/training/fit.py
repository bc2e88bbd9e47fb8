"""A whole run: ``fit`` trains a :class:`~grpozoo.training.trainer.Trainer` to its step budget with
a progress bar, held-out evaluation before and after, periodic checkpoints, a clean stop on
Ctrl-C, and a checkpoint of the last complete step when a step fails."""

from __future__ import annotations

import copy
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from grpozoo.console import say
from grpozoo.training import checkpoint as ckpt
from grpozoo.training import distributed
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
        say(self.console, "[bold]stopping after this step[/] and saving a checkpoint (Ctrl-C again to abort now)")

    def __enter__(self) -> StopAfterStep:
        in_main_thread = threading.current_thread() is threading.main_thread()
        self.previous = signal.signal(signal.SIGINT, self._handle) if in_main_thread else None
        return self

    def __exit__(self, *exc) -> None:
        if self.previous is not None:
            signal.signal(signal.SIGINT, self.previous)


@contextmanager
def checkpoint_on_failure(trainer: Trainer) -> Iterator[None]:
    """Around one training step: when the step raises before the optimiser changed the model, put
    back the selector, component state and random state it had advanced, save the checkpoint of the
    step before (what an uninterrupted run would have saved there) and let the exception go on.
    Once an update ran, the state is half a step on and nothing is saved; nor is anything with
    several learner processes, where a save needs every process and the others may be gone (the
    last periodic checkpoint stands)."""
    step, state, rng = trainer.step, copy.deepcopy(trainer.state), ckpt.rng_state()
    selector = copy.deepcopy(trainer.rollouts.selector.state_dict())
    updates: list[bool] = []
    hook = trainer.learner.optimizer.register_step_pre_hook(lambda *_: updates.append(True))
    try:
        yield
    except Exception:
        if step > 0 and not updates and distributed.world_size() == 1:
            path = ckpt.checkpoint_dir(trainer.run_dir, step)
            if ckpt.latest_checkpoint(trainer.run_dir) != path:
                trainer.step = step
                trainer.set_state(state)
                trainer.rollouts.selector.load_state_dict(selector)
                ckpt.set_rng_state(rng)
                path = trainer.save()
            say(trainer.console, f"step {step + 1} failed; saved a checkpoint of step {step} ({path}). "
                                 f"Once fixed, continue with: grpozoo train --resume {trainer.run_dir}")
        raise
    finally:
        hook.remove()


def fit(trainer: Trainer, show_progress: bool = True) -> dict[str, Any]:
    """Run ``trainer`` to ``train.steps`` with a progress bar, held-out evaluation at start and end,
    checkpoints every ``train.checkpoint_every`` steps, and a checkpoint when stopped with Ctrl-C
    (after the current step completes; then KeyboardInterrupt is raised) or when a step fails
    before changing the model (see :func:`checkpoint_on_failure`).

    Returns ``{"metrics": last step's metrics, "eval_start": …, "eval_end": …}``.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    cfg = trainer.cfg
    console = trainer.console
    summary: dict[str, Any] = {}
    if cfg.eval.at_start and trainer.step == 0:
        summary["eval_start"] = trainer.evaluate()
        say(console, f"held-out accuracy before training: {format_eval(summary['eval_start'])}")
    progress = Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("step {task.completed}/{task.total}"),
        TextColumn("reward {task.fields[reward]}"), TextColumn("acc {task.fields[accuracy]}"),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(),
        console=console, disable=not show_progress,
    )
    with progress, StopAfterStep(console) as stop:
        bar = progress.add_task(cfg.recipe, total=cfg.train.steps, completed=trainer.step, reward="-", accuracy="-")
        while trainer.step < cfg.train.steps:
            with checkpoint_on_failure(trainer):
                metrics = trainer.train_step()
            summary["metrics"] = metrics
            progress.update(bar, completed=trainer.step, reward=f"{metrics['reward/mean']:.3f}",
                            accuracy=f"{metrics['accuracy']:.2f}")
            trainer.plot()
            if trainer.step % cfg.train.checkpoint_every == 0 or stop.requested:
                path = trainer.save()
            if stop.requested:
                progress.stop()
                say(console, f"stopped at step {trainer.step}; checkpoint {path}. "
                             f"Continue with: grpozoo train --resume {trainer.run_dir}")
                raise KeyboardInterrupt
    if ckpt.latest_checkpoint(trainer.run_dir) != ckpt.checkpoint_dir(trainer.run_dir, trainer.step):
        trainer.save()
    if cfg.eval.at_end:
        summary["eval_end"] = trainer.evaluate()
        say(console, f"held-out accuracy after training:  {format_eval(summary['eval_end'])}")
        trainer.plot()
    trainer.loggers.close()
    trainer.engine.close()
    say(console, f"run directory: {trainer.run_dir}")
    return summary


def format_eval(result: dict[str, Any]) -> str:
    return (f"{result['accuracy']:.3f} ± {result['accuracy_stderr']:.3f} "
            f"({result['prompts']} prompts × {result['samples_per_prompt']} samples)")
