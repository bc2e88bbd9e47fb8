"""Training an arena's runs, one after the other or several processes at once, resumably.

Re-running an arena continues where it stopped: a finished run (its final held-out evaluation is
in ``eval.jsonl``; or, with ``eval.at_end`` off, its last step is checkpointed) is not repeated;
an interrupted run resumes from its latest checkpoint (``Trainer(resume=True)``); a run that
stopped before its first checkpoint starts again.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import yaml

from grpozoo.arena.spec import Arena, ArenaRun
from grpozoo.config import ConfigError, load_run_config, validate
from grpozoo.console import quiet_libraries, say
from grpozoo.errors import checking_input
from grpozoo.reporting.metrics import read_jsonl
from grpozoo.training import checkpoint as ckpt

NEW, RESUME, FINISHED = "new", "resume", "finished"
# keys that may differ between the run on disk and the arena's plan of it
IGNORED_DIFFERENCES = ("output_dir", "train.steps", "train.threads", "log")


def checkpoint_step(path: Path | None) -> int:
    return int(path.name.split("-")[-1]) if path is not None else 0


def run_state(run: ArenaRun) -> str:
    """``finished``, ``resume`` (a checkpoint to continue from) or ``new``."""
    steps = run.cfg.train.steps
    latest = ckpt.latest_checkpoint(run.run_dir)
    if run.cfg.eval.at_end:
        done = any(e.get("step") == steps for e in read_jsonl(run.run_dir / "eval.jsonl"))
    else:
        done = checkpoint_step(latest) == steps
    if done and checkpoint_step(latest) == steps:
        return FINISHED
    return RESUME if latest is not None else NEW


def _flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: data}


def check_compatible(run: ArenaRun) -> None:
    """A run directory already on disk must have been trained with the configuration the arena
    asks for now (apart from the step count, which may grow, and where the logs go). A run without
    a checkpoint is not checked: nothing of it is reused."""
    if not (run.run_dir / "config.yaml").exists() or ckpt.latest_checkpoint(run.run_dir) is None:
        return
    saved = _flatten(load_run_config(run.run_dir).model_dump(mode="json"))
    wanted = _flatten(run.cfg.model_dump(mode="json"))
    for key in sorted(set(saved) | set(wanted)):
        if key.startswith(IGNORED_DIFFERENCES):
            continue
        if saved.get(key) != wanted.get(key):
            raise ConfigError(
                f"{str(run.run_dir)!r} was trained with {key}={saved.get(key)!r}, but this arena asks for "
                f"{key}={wanted.get(key)!r}: run the arena with another --output, or delete that run directory "
                f"to train it again"
            )
    done = checkpoint_step(ckpt.latest_checkpoint(run.run_dir))
    if done > run.cfg.train.steps:
        raise ConfigError(
            f"{str(run.run_dir)!r} has already trained {done} steps, more than train.steps={run.cfg.train.steps}: "
            f"use --steps {done} or more, or another --output"
        )


def train_one(run: ArenaRun, state: str, console=None, show_progress: bool = True) -> dict[str, Any]:
    """Train (or resume) one run in this process to its end, final evaluation included."""
    from grpozoo.training import Trainer, fit

    if state == NEW and run.run_dir.exists():
        shutil.rmtree(run.run_dir)  # stopped before its first checkpoint: nothing to resume
    with checking_input():
        trainer = Trainer(run.cfg, run_dir=run.run_dir, resume=state == RESUME, console=console)
    return fit(trainer, show_progress=show_progress)


def _train_in_worker(cfg_data: dict[str, Any], run_dir: str, state: str, threads: int) -> str:
    """A worker process's job: quiet libraries, share the cores, train one run."""
    import torch

    quiet_libraries()
    cfg = validate(cfg_data)
    if cfg.train.threads is None:
        torch.set_num_threads(threads)
    run = ArenaRun(entry=None, seed=cfg.train.seed, run_dir=Path(run_dir), cfg=cfg)  # type: ignore[arg-type]
    train_one(run, state, console=None, show_progress=False)
    return run_dir


def _steps_logged(run_dir: Path) -> int:
    path = run_dir / "metrics.jsonl"
    if not path.exists():
        return 0
    with path.open() as f:
        return sum(1 for line in f if line.strip())


def run_arena(arena: Arena, console=None, show_progress: bool = True, report: bool = True) -> dict[str, Any]:
    """Train every run of ``arena`` that is not finished yet, then write the report.

    Returns ``{"trained": [labels], "skipped": [labels], "report": {paths}}``. Ctrl-C stops after
    the current step of every run in progress, each saving a checkpoint, then raises
    ``KeyboardInterrupt``; the same call again continues.
    """
    from grpozoo.arena.report import write_report

    if arena.parallel < 1:
        raise ConfigError(f"--parallel {arena.parallel}: at least 1 run at a time")
    runs = arena.check()
    for run in runs:
        check_compatible(run)
    arena.directory.mkdir(parents=True, exist_ok=True)
    (arena.directory / "arena.yaml").write_text(yaml.safe_dump(arena.definition(), sort_keys=False))
    states = {run.label: run_state(run) for run in runs}
    to_train = [run for run in runs if states[run.label] != FINISHED]
    skipped = [run.label for run in runs if states[run.label] == FINISHED]
    say(
        console,
        f"[bold]grpozoo arena[/] {len(arena.entries)} recipes × {len(arena.seeds)} seeds → "
        f"{arena.directory}  ({len(skipped)} finished, {len(to_train)} to train)",
    )
    parallel = min(arena.parallel, len(to_train) or 1)
    cores = os.cpu_count() or 1
    if parallel > cores:
        say(console, f"--parallel {parallel} is more than the {cores} cores here: running {cores} at a time")
        parallel = cores
    if parallel > 1:
        _run_parallel(to_train, states, parallel, cores, console, show_progress)
    else:
        for i, run in enumerate(to_train, 1):
            verb = "resuming" if states[run.label] == RESUME else "training"
            if console is not None:
                console.rule(f"[{i}/{len(to_train)}] {verb} {run.label}")
            train_one(run, states[run.label], console=console, show_progress=show_progress)
    result: dict[str, Any] = {"trained": [run.label for run in to_train], "skipped": skipped}
    if report:
        result["report"] = write_report(arena)
        if console is not None:
            console.print(scores_table(arena))
        say(console, f"[bold]report:[/] {result['report']['html']}")
    return result


def scores_table(arena: Arena):
    """The final scores as a terminal table (the report's first table)."""
    from rich.table import Table

    from grpozoo.arena.report import collect
    from grpozoo.reporting.comparison import ACCURACY_HEADER, accuracy_rows

    groups, _ = collect(arena)
    groups = {name: runs for name, runs in groups.items() if runs}
    table = Table(
        title=f"held-out accuracy, {len(arena.seeds)} seed(s): mean ± std (lowest–highest)",
        title_justify="left",
    )
    for column in ACCURACY_HEADER:
        table.add_column(column, overflow="fold")
    for row in accuracy_rows(groups, {e.name: e.recipe for e in arena.entries}):
        table.add_row(*row)
    return table


def _run_parallel(
    to_train: list[ArenaRun], states: dict[str, str], parallel: int, cores: int, console, show_progress: bool
) -> None:
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    threads = max(1, cores // parallel)
    progress = Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TextColumn("step {task.completed}/{task.total}"),
        TextColumn("{task.fields[status]}"),
        TimeElapsedColumn(),
        console=console,
        disable=not show_progress or console is None,
    )
    bars = {
        run.label: progress.add_task(
            run.label, total=run.cfg.train.steps, completed=_steps_logged(run.run_dir), status="waiting"
        )
        for run in to_train
    }
    executor = ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn"))
    try:
        with progress:
            futures = {
                executor.submit(
                    _train_in_worker,
                    run.cfg.model_dump(mode="json"),
                    str(run.run_dir),
                    states[run.label],
                    threads,
                ): run
                for run in to_train
            }
            pending = set(futures)
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    run = futures[future]
                    if future.exception() is not None:
                        say(console, f"[bold red]{run.label} failed[/] ({run.run_dir})")
                        future.result()  # raises the run's error: the arena stops
                    progress.update(bars[run.label], completed=run.cfg.train.steps, status="[green]finished")
                for future in pending:
                    run = futures[future]
                    steps = _steps_logged(run.run_dir)
                    status = "running" if future.running() else "waiting"
                    progress.update(bars[run.label], completed=steps, status=status)
    except KeyboardInterrupt:
        say(console, "stopping: every run in progress finishes its step and saves a checkpoint …")
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
