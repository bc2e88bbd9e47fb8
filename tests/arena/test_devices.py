"""Runs trained at once on GPUs get one GPU each: the pure slot → device assignment, and the
parallel runner's use of it (with threads for processes and a fake training, so no GPU and no
model is needed)."""

from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from rich.console import Console

from grpozoo.arena import arena_from_args, run_arena, runner
from grpozoo.arena.runner import check_compatible, devices_for
from grpozoo.config import ConfigError, save_config
from grpozoo.training import checkpoint as ckpt


@pytest.mark.parametrize("parallel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("gpus", [0, 1, 2])
def test_on_the_cpu_every_slot_is_the_cpu(parallel, gpus):
    assert devices_for("cpu", parallel, gpus) == ["cpu"] * parallel


@pytest.mark.parametrize(
    ("gpus", "parallel", "expected"),
    [
        (1, 1, ["cuda:0"]),
        (1, 2, ["cuda:0"]),
        (1, 5, ["cuda:0"]),
        (2, 1, ["cuda:0"]),
        (2, 2, ["cuda:0", "cuda:1"]),
        (2, 3, ["cuda:0", "cuda:1"]),
        (2, 5, ["cuda:0", "cuda:1"]),
        (4, 1, ["cuda:0"]),
        (4, 2, ["cuda:0", "cuda:1"]),
        (4, 3, ["cuda:0", "cuda:1", "cuda:2"]),
        (4, 4, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
        (4, 5, ["cuda:0", "cuda:1", "cuda:2", "cuda:3"]),
    ],
)
def test_on_gpus_each_slot_gets_its_own_gpu(gpus, parallel, expected):
    assert devices_for("cuda", parallel, gpus) == expected


@pytest.mark.parametrize("parallel", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("gpus", [2, 4])
def test_a_pinned_gpu_takes_one_run_at_a_time(parallel, gpus):
    assert devices_for("cuda:1", parallel, gpus) == ["cuda:1"]


@pytest.mark.parametrize(
    ("device", "gpus", "message"),
    [
        ("cuda", 0, "train.device=cuda, but torch sees no CUDA device here"),
        ("cuda:2", 2, r"train.device=cuda:2, but torch sees 2 CUDA device\(s\) here: cuda:0 … cuda:1"),
    ],
)
def test_a_gpu_that_is_not_there_is_named(device, gpus, message):
    with pytest.raises(ConfigError, match=message):
        devices_for(device, 2, gpus)


class ThreadsForProcesses(ThreadPoolExecutor):
    """The runner's process pool, as threads of this process: the test's fakes apply in them."""

    created: list[int] = []

    def __init__(self, max_workers: int, mp_context=None):
        ThreadsForProcesses.created.append(max_workers)
        super().__init__(max_workers=max_workers)


class FakeTraining:
    """Stands for ``train_one``: records each run's device, checks that no two runs use one GPU at
    the same time and that the worker made the run's GPU its current device."""

    def __init__(self, monkeypatch, gpus: int):
        self.lock = threading.Lock()
        self.busy: set[str] = set()
        self.current: dict[int, str] = {}  # thread → device given to torch.cuda.set_device
        self.devices: dict[str, str] = {}  # run directory name → train.device of its configuration
        self.made_current: dict[str, str | None] = {}  # run directory name → current GPU as it trained
        self.most_at_once = 0
        monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
        monkeypatch.setattr(torch.cuda, "set_device", self.set_device)
        monkeypatch.setattr(runner, "train_one", self.train_one)
        monkeypatch.setattr(runner, "quiet_libraries", lambda: None)
        monkeypatch.setattr(runner, "ProcessPoolExecutor", ThreadsForProcesses)
        monkeypatch.setattr(runner.os, "cpu_count", lambda: 16)
        ThreadsForProcesses.created = []

    def set_device(self, device: str) -> None:
        self.current[threading.get_ident()] = device

    def train_one(self, run, state, console=None, show_progress=True):
        device, name = run.cfg.train.device, run.run_dir.name
        with self.lock:
            assert device == "cpu" or device not in self.busy, f"{device} is training another run"
            self.busy.add(device)
            self.devices[name] = device
            self.made_current[name] = self.current.get(threading.get_ident())
            self.most_at_once = max(self.most_at_once, len(self.busy))
        time.sleep(0.05)  # long enough for the runs of one wave to overlap
        with self.lock:
            self.busy.discard(device)
        return {}


def arena(tmp_path: Path, device: str, parallel: int, seeds: int = 3):
    made = arena_from_args(
        recipes="grpo,dr_grpo",
        steps=2,
        seeds=seeds,
        overrides=[f"train.device={device}", "train.threads=1"],
        output=tmp_path / "arena",
    )
    made.parallel = parallel
    return made


def run_quietly(made) -> tuple[dict, str]:
    out = io.StringIO()
    result = run_arena(made, console=Console(file=out, width=200), show_progress=False, report=False)
    return result, " ".join(out.getvalue().split())


def test_parallel_runs_on_gpus_get_one_gpu_each(tmp_path, monkeypatch):
    fake = FakeTraining(monkeypatch, gpus=4)
    result, said = run_quietly(arena(tmp_path, "cuda", parallel=3))
    assert len(result["trained"]) == 6 and set(fake.devices) == set(result["trained"])
    assert ThreadsForProcesses.created == [3]
    assert set(fake.devices.values()) == {"cuda:0", "cuda:1", "cuda:2"}
    assert fake.most_at_once == 3  # three at once, each on its own GPU (the fake checks it)
    # the first wave starts in order, one run per slot
    first = [fake.devices[label] for label in ("grpo-seed0", "dr_grpo-seed0", "grpo-seed1")]
    assert first == ["cuda:0", "cuda:1", "cuda:2"]
    assert fake.made_current == fake.devices  # each worker made its run's GPU the current one
    assert "GPU" not in said


def test_more_parallel_runs_than_gpus_are_capped_with_a_note(tmp_path, monkeypatch):
    fake = FakeTraining(monkeypatch, gpus=2)
    result, said = run_quietly(arena(tmp_path, "cuda", parallel=5))
    assert "--parallel 5 is more than the 2 GPUs here: running 2 at a time, one per GPU" in said
    assert ThreadsForProcesses.created == [2]
    assert len(fake.devices) == 6 and set(fake.devices.values()) == {"cuda:0", "cuda:1"}
    assert fake.most_at_once == 2


def test_a_pinned_gpu_trains_every_run_there_one_at_a_time(tmp_path, monkeypatch):
    fake = FakeTraining(monkeypatch, gpus=4)
    result, said = run_quietly(arena(tmp_path, "cuda:1", parallel=3))
    assert "--parallel 3 with train.device=cuda:1 (one GPU): running 1 at a time" in said
    assert ThreadsForProcesses.created == []  # one at a time: in this process
    assert len(fake.devices) == 6 and set(fake.devices.values()) == {"cuda:1"}
    assert fake.most_at_once == 1


def test_parallel_runs_on_the_cpu_stay_on_the_cpu(tmp_path, monkeypatch):
    fake = FakeTraining(monkeypatch, gpus=4)
    result, said = run_quietly(arena(tmp_path, "cpu", parallel=3))
    assert ThreadsForProcesses.created == [3]
    assert len(fake.devices) == 6 and set(fake.devices.values()) == {"cpu"}
    assert fake.current == {} and "GPU" not in said


def test_a_run_trained_on_one_gpu_continues_on_any(tmp_path):
    run = arena(tmp_path, "cuda", parallel=2).runs()[0]
    run.run_dir.mkdir(parents=True)
    save_config(
        run.cfg.model_copy(update={"train": run.cfg.train.model_copy(update={"device": "cuda:1"})}),
        run.run_dir / "config.yaml",
    )
    state = ckpt.checkpoint_dir(run.run_dir, 1)
    state.mkdir(parents=True)
    (state / ckpt.STATE_FILE).write_bytes(b"")
    check_compatible(run)  # cuda:1 on disk, cuda asked: the same setting
    check_compatible(arena(tmp_path, "cuda:0", parallel=1).runs()[0])
    with pytest.raises(
        ConfigError,
        match=r"was trained with train.device='cuda:1', but this arena asks for "
        r"train.device='cpu'",
    ):
        check_compatible(arena(tmp_path, "cpu", parallel=1).runs()[0])
