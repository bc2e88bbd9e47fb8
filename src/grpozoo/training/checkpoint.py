"""Checkpoints: the model (adapters or full weights) plus everything a resume needs to continue
exactly — optimiser, scheduler, RNG states, selector state and the step."""

from __future__ import annotations

import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from grpozoo.training import distributed

STATE_FILE = "trainer_state.pt"
SHARDED_DIR = "sharded"  # each process's share of a sharded (FSDP) optimiser state
PARTIAL = ".partial"  # a checkpoint being written


def checkpoint_dir(run_dir: Path, step: int) -> Path:
    return run_dir / "checkpoints" / f"step-{step:06d}"


def list_checkpoints(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    if not root.exists():
        return []
    return sorted(p for p in root.iterdir()
                  if p.is_dir() and not p.name.endswith(PARTIAL) and (p / STATE_FILE).exists())


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def rng_state() -> dict[str, Any]:
    """Every random state a run draws from: torch's CPU generator and each CUDA device's, Python's
    and NumPy's."""
    state = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore :func:`rng_state`'s states; CUDA ones where this machine has as many devices."""
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    if "cuda" in state and torch.cuda.is_available() and torch.cuda.device_count() == len(state["cuda"]):
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(
    run_dir: Path, step: int, model, tokenizer, trainer_state: dict[str, Any], keep: int,
    sharded_state: dict[str, Any] | None = None,
) -> Path:
    """Write the checkpoint of ``step`` atomically (into a ``.partial`` folder, renamed once
    complete) and keep only the newest ``keep``. With several learner processes every process
    calls it: the first writes the model and ``trainer_state``, and each writes its share of
    ``sharded_state`` (torch.distributed.checkpoint), if any."""
    target = checkpoint_dir(run_dir, step)
    partial = target.with_name(target.name + PARTIAL)
    main = distributed.rank() == 0
    if main:
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
    distributed.barrier()
    if sharded_state is not None:
        import torch.distributed.checkpoint as dcp

        dcp.save(sharded_state, checkpoint_id=partial / SHARDED_DIR)
    if main:
        model.save_pretrained(partial / "model")
        tokenizer.save_pretrained(partial / "model")
        torch.save({**trainer_state, "step": step, "rng": rng_state()}, partial / STATE_FILE)
    distributed.barrier()  # every share written
    if main:
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        for old in list_checkpoints(run_dir)[:-keep]:
            shutil.rmtree(old)
    distributed.barrier()  # no process reads the checkpoints before they are in place
    return target


def load_trainer_state(checkpoint: Path) -> dict[str, Any]:
    # on the CPU: the optimiser's load_state_dict moves each state to its parameter's device, and a run
    # resumed on another GPU never touches the one it was saved from
    return torch.load(checkpoint / STATE_FILE, weights_only=False, map_location="cpu")
