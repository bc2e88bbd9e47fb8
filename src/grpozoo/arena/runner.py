"""Training an arena's runs, one after the other or several processes at once, resumably.

Re-running an arena continues where it stopped: a finished run (its final held-out evaluation is
in ``eval.jsonl``; or, with ``eval.at_end`` off, its last step is checkpointed) is not repeated;
an interrupted run resumes from its latest checkpoint (``Trainer(resume=True)``); a run that
stopped before its first checkpoint starts again.

Runs trained at once on GPUs (``train.device=cuda``) get one GPU each: the run in worker slot ``k``
trains on ``cuda:k``, so no two share a GPU; a pinned ``cuda:N`` trains one run at a time.
"""

from __future__ import annotations

import os
import shutil
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
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


def _same_setting(key: str, saved: Any, wanted: Any) -> bool:
    if key == "train.device" and isinstance(saved, str) and isinstance(wanted, str):
        # which GPU a run trained on is placement, not a setting: cuda:1 continues as cuda or cuda:0
        return saved.split(":")[0] == wanted.split(":")[0]
    return bool(saved == wanted)


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
        if not _same_setting(key, saved.get(key), wanted.get(key)):
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


def devices_for(device: str, parallel: int, gpu_count: int) -> list[str]:
    """The device of each worker slot when up to ``parallel`` runs asking for ``device`` train at
    once on a machine with ``gpu_count`` CUDA devices; as many slots as may run at once.

    ``cuda``: one GPU per slot, ``cuda:0`` … (at most ``gpu_count`` slots); a pinned ``cuda:N``:
    one slot on that GPU; any other device (``cpu``): ``parallel`` slots, all on it.
    """
    if not device.startswith("cuda"):
        return [device] * parallel
    kind, _, index = device.partition(":")
    if gpu_count < 1:
        raise ConfigError(f"train.device={device}, but torch sees no CUDA device here")
    if index:
        if index.isdigit() and int(index) >= gpu_count:
            raise ConfigError(
                f"train.device={device}, but torch sees {gpu_count} CUDA device(s) here: "
                f"cuda:0 … cuda:{gpu_count - 1}"
            )
        return [device]
    return [f"{kind}:{slot}" for slot in range(min(parallel, gpu_count))]


def _slot_devices(runs: list[ArenaRun], parallel: int, console) -> dict[str, list[str]]:
    """Each asked-for device's slot devices (:func:`devices_for`), cut to the runs that fit at once
    on every one of them, with a note when that is fewer than ``parallel``."""
    asked = sorted({run.cfg.train.device for run in runs})
    gpus = 0
    if any(device.startswith("cuda") for device in asked):
        import torch

        gpus = torch.cuda.device_count()
    slots = {device: devices_for(device, parallel, gpus) for device in asked}
    fits = min(len(devices) for devices in slots.values())
    if fits < parallel:
        pinned = [device for device in asked if len(slots[device]) == 1 and ":" in device]
        if pinned:
            say(
                console, f"--parallel {parallel} with train.device={pinned[0]} (one GPU): running 1 at a time"
            )
        else:
            plural = "" if gpus == 1 else "s"
            say(
                console,
                f"--parallel {parallel} is more than the {gpus} GPU{plural} here: "
                f"running {fits} at a time, one per GPU",
            )
    return {device: devices[:fits] for device, devices in slots.items()}


def _train_in_worker(cfg_data: dict[str, Any], run_dir: str, state: str, threads: int) -> str:
    """A worker process's job: quiet libraries, share the cores, train one run (on its slot's GPU,
    ``train.device``, whose cached memory it frees afterwards for the next run on that GPU)."""
    import gc

    import torch

    quiet_libraries()
    cfg = validate(cfg_data)
    if cfg.train.threads is None:
        torch.set_num_threads(threads)
    if cfg.train.device.startswith("cuda:"):
        torch.cuda.set_device(cfg.train.device)
    run = ArenaRun(entry=None, seed=cfg.train.seed, run_dir=Path(run_dir), cfg=cfg)  # type: ignore[arg-type]
    try:
        train_one(run, state, console=None, show_progress=False)
    finally:
        # this process may train its next run on another GPU
        gc.collect()
        torch.cuda.empty_cache()
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
    devices: dict[str, list[str]] = {}
    if parallel > 1:
        devices = _slot_devices(to_train, parallel, console)
        parallel = min(len(slots) for slots in devices.values())
    cores = os.cpu_count() or 1
    if parallel > cores:
        say(console, f"--parallel {parallel} is more than the {cores} cores here: running {cores} at a time")
        parallel = cores
    if parallel > 1:
        _run_parallel(to_train, states, parallel, devices, cores, console, show_progress)
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
    to_train: list[ArenaRun],
    states: dict[str, str],
    parallel: int,
    devices: dict[str, list[str]],
    cores: int,
    console,
    show_progress: bool,
) -> None:
    """Train ``to_train`` in ``parallel`` worker processes: a run goes to the lowest free slot and
    trains on that slot's device (``devices``: each asked-for device's slot devices, as
    :func:`_slot_devices` gives them), so that two runs never share a GPU at the same time."""
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
    waiting = list(to_train)
    free = list(range(parallel))
    futures: dict[Future[str], tuple[ArenaRun, int]] = {}
    executor = ProcessPoolExecutor(max_workers=parallel, mp_context=get_context("spawn"))

    def start_next() -> set[Future[str]]:
        """Give free slots their next runs."""
        started = set()
        while free and waiting:
            slot, run = min(free), waiting.pop(0)
            free.remove(slot)
            cfg = run.cfg.model_dump(mode="json")
            cfg["train"]["device"] = devices[run.cfg.train.device][slot]
            future = executor.submit(_train_in_worker, cfg, str(run.run_dir), states[run.label], threads)
            futures[future] = (run, slot)
            started.add(future)
        return started

    try:
        with progress:
            pending = start_next()
            while pending:
                done, pending = wait(pending, timeout=0.5, return_when=FIRST_COMPLETED)
                for future in done:
                    run, slot = futures[future]
                    if future.exception() is not None:
                        say(console, f"[bold red]{run.label} failed[/] ({run.run_dir})")
                        future.result()  # raises the run's error: the arena stops
                    progress.update(bars[run.label], completed=run.cfg.train.steps, status="[green]finished")
                    free.append(slot)
                pending |= start_next()
                for future in pending:
                    run, _ = futures[future]
                    steps = _steps_logged(run.run_dir)
                    status = "running" if future.running() else "waiting"
                    progress.update(bars[run.label], completed=steps, status=status)
    except KeyboardInterrupt:
        say(console, "stopping: every run in progress finishes its step and saves a checkpoint …")
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
