"""TensorBoard, trackio and Weights & Biases beside metrics.jsonl: off by default (nothing imported,
nothing written); when on, they receive every step's metrics, the held-out evaluations and, every N
steps, a completion table."""

from __future__ import annotations

import importlib.util
import json
import os
import struct
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from grpozoo.config import ConfigError, resolve_config
from grpozoo.errors import MachineSetupError
from grpozoo.reporting.loggers import RunLoggers, markdown_table, numeric, trackio_run_name, wandb_run_id
from grpozoo.reporting.metrics import read_jsonl
from grpozoo.training import Trainer, fit


@pytest.fixture(autouse=True)
def keep_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_with_all_off_nothing_is_imported_or_written(tiny_overrides, tmp_path, monkeypatch):
    # an import of any of the packages would now fail
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "trackio", None)
    monkeypatch.setitem(sys.modules, "wandb", None)
    cfg = resolve_config(overrides=tiny_overrides)
    assert not (cfg.log.tensorboard or cfg.log.trackio or cfg.log.wandb or cfg.log.completions_every)
    loggers = RunLoggers(cfg, tmp_path)
    assert not loggers.active
    loggers.log_step({"step": 1, "reward/mean": 0.5})
    loggers.log_eval({"step": 0, "accuracy": 0.25})
    loggers.close()
    assert list(tmp_path.iterdir()) == []


def test_a_completion_table_without_a_logger_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"log.completions_every=5 logs a completion table to TensorBoard, "
        r"trackio or wandb, but all are off: set log.tensorboard=true, log.trackio=true or log.wandb=true",
    ):
        resolve_config(overrides=["log.completions_every=5"])


@pytest.mark.parametrize("package", ["trackio", "wandb"])
def test_a_missing_package_is_named_with_its_install_command(tiny_overrides, tmp_path, monkeypatch, package):
    monkeypatch.setitem(sys.modules, package, None)
    cfg = resolve_config(overrides=[*tiny_overrides, f"log.{package}=true"])
    with pytest.raises(
        ImportError,
        match=rf"log.{package}=true needs the {package} package .*pip install 'grpozoo\[{package}\]', "
        rf"or set log.{package}=false",
    ):
        RunLoggers(cfg, tmp_path)


def test_a_trainer_opens_its_own_loggers_when_built_so_a_missing_package_stops_it_before_any_step(
    tiny_overrides, tmp_path, monkeypatch
):
    monkeypatch.setitem(sys.modules, "trackio", None)
    cfg = resolve_config(overrides=[*tiny_overrides, "log.trackio=true"])
    with pytest.raises(ImportError, match=r"log.trackio=true needs the trackio package"):
        Trainer(cfg)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


class FakeTrackio(types.ModuleType):
    """Records what a trackio run receives."""

    def __init__(self):
        super().__init__("trackio")
        self.inits, self.logs, self.finished = [], [], 0
        fake = self

        class Table:
            def __init__(self, columns=None, data=None):
                self.columns, self.data = columns, data

        class Run:
            def log(self, metrics, step=None):
                fake.logs.append((step, metrics))

            def finish(self):
                fake.finished += 1

        self.Table = Table
        self._run = Run()

    def init(self, **kwargs):
        self.inits.append(kwargs)
        return self._run


def test_tensorboard_and_trackio_get_metrics_evaluations_and_completion_tables(
    tiny_overrides, tmp_path, monkeypatch
):
    pytest.importorskip(
        "tensorboard",
        reason="tensorboard is not installed (pip install 'grpozoo[tensorboard]'): not exercised",
    )
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    fake = FakeTrackio()
    monkeypatch.setitem(sys.modules, "trackio", fake)
    cfg = resolve_config(
        overrides=[
            *tiny_overrides,
            "train.steps=2",
            "train.threads=1",
            "log.tensorboard=true",
            "log.trackio=true",
            "log.completions_every=2",
        ]
    )
    trainer = Trainer(cfg)
    fit(trainer, show_progress=False)
    run = tmp_path / "run"
    metrics = read_jsonl(run / "metrics.jsonl")
    evals = read_jsonl(run / "eval.jsonl")

    events = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    reward = events.Scalars("reward/mean")
    assert [e.step for e in reward] == [1, 2]
    assert [e.value for e in reward] == pytest.approx([m["reward/mean"] for m in metrics], rel=1e-6)
    assert [e.step for e in events.Scalars("time/step_s")] == [1, 2]
    held_out = events.Scalars("eval/accuracy")
    assert [e.step for e in held_out] == [0, 2]
    assert [e.value for e in held_out] == pytest.approx([e["accuracy"] for e in evals], abs=1e-7)
    texts = events.Tensors("completions/text_summary")
    assert [t.step for t in texts] == [2]  # every 2 steps
    table = texts[0].tensor_proto.string_val[0].decode()
    assert table.startswith("| step | prompt | completion | reward | advantage |")
    assert table.count("\n| 2 | ") == 6  # 2 prompts × 3 completions

    assert len(fake.inits) == 1 and fake.finished == 1
    init = fake.inits[0]
    assert init["project"] == "grpozoo" and init["name"] == trackio_run_name(run)
    assert init["config"]["recipe"] == "grpo" and init["config"]["log"]["trackio"] is True
    steps = [step for step, _ in fake.logs]
    assert steps == [0, 1, 2, 2]  # the evaluation before, two steps, the evaluation after
    _, first = fake.logs[1]
    assert first["reward/mean"] == pytest.approx(metrics[0]["reward/mean"]) and "step" not in first
    assert "completions" not in first
    _, second = fake.logs[2]
    completions = second["completions"]
    assert completions.columns == ["step", "prompt", "completion", "reward", "advantage"]
    assert len(completions.data) == 6
    samples = read_jsonl(run / "samples.jsonl")[6:]
    for row, sample in zip(completions.data, samples, strict=True):
        assert row[0] == 2 and row[2] == sample["completion"]
        assert row[3] == pytest.approx(sample["reward"], abs=1e-4)
        assert row[4] == pytest.approx(sample["advantage"], abs=1e-4)
        assert "<" not in row[1] and row[1] in sample["prompt"]  # the question, not the chat template
    _, final = fake.logs[3]
    assert final["eval/accuracy"] == evals[-1]["accuracy"]


def test_markdown_table_escapes_pipes_and_newlines():
    text = markdown_table([[1, "a | b", "x\ny", 0.5, None]])
    assert text.splitlines()[-1] == "| 1 | a \\| b | x ⏎ y | 0.5 | None |"


TRACKIO_SCRIPT = """
import json, sys
from grpozoo.config import resolve_config
from grpozoo.reporting.loggers import TRACKIO_PROJECT, trackio_run_name
from grpozoo.training import Trainer, fit
trainer = Trainer(resolve_config(overrides=json.loads(sys.argv[1])))
fit(trainer, show_progress=False)
from trackio.sqlite_storage import SQLiteStorage
logs = SQLiteStorage.get_logs(TRACKIO_PROJECT, trackio_run_name(trainer.run_dir))
print("LOGS" + json.dumps([{k: l[k] for k in ("step", "reward/mean", "eval/accuracy") if k in l} for l in logs]))
"""


def test_the_real_trackio_stores_the_run_locally(tiny_overrides, tmp_path):
    if importlib.util.find_spec("trackio") is None:
        pytest.skip(
            "trackio is not installed (pip install 'grpozoo[trackio]'): the real trackio logger was not "
            "exercised (the fake-trackio test above checks what grpozoo sends it)"
        )
    overrides = [
        *tiny_overrides,
        "train.steps=2",
        "train.threads=1",
        "log.trackio=true",
        "log.completions_every=1",
    ]
    env = {**__import__("os").environ, "TRACKIO_DIR": str(tmp_path / "trackio")}
    done = subprocess.run(
        [sys.executable, "-c", TRACKIO_SCRIPT, json.dumps(overrides)],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=Path(__file__).parent,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    logs = json.loads(done.stdout.split("LOGS", 1)[1].splitlines()[0])
    assert [log["step"] for log in logs] == [0, 1, 2, 2]
    metrics = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [log["reward/mean"] for log in logs[1:3]] == pytest.approx([m["reward/mean"] for m in metrics])
    assert (tmp_path / "trackio" / "grpozoo.db").exists()


# ---------------------------------------------------------------------------------------- wandb


def wandb_core_processes() -> list[int]:
    """Process ids of wandb's service (wandb-core) started by this process."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        name, rest = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if rest[1] == str(os.getpid()) and "wandb" in name:
            pids.append(int(stat.parent.name))
    return pids


@pytest.fixture
def offline_wandb(tmp_path, monkeypatch):
    """The real wandb in offline mode, every directory it would use in ``tmp_path``; afterwards its
    service process is stopped and checked gone."""
    wandb = pytest.importorskip("wandb", reason="wandb is not installed (pip install 'grpozoo[wandb]')")
    for name in list(os.environ):
        if name.startswith("WANDB_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("WANDB_MODE", "offline")
    for name in ("WANDB_DIR", "WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR", "WANDB_ARTIFACT_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home" / name.lower()))
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    wandb.teardown()  # wandb reads its environment once per process, when set up
    yield wandb
    wandb.teardown()
    assert wandb_core_processes() == []


def wandb_records(path: Path) -> list[Any]:
    """The records of a run's ``.wandb`` file: protocol-buffer ``Record`` messages (wandb.proto)
    framed as in LevelDB's log format (32 KiB blocks; each piece a 7-byte header of checksum,
    length and kind, kinds 1 whole, 2 first, 3 middle, 4 last), after a 7-byte file header."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:7] == b":W&B\xe1\xbe\x00", data[:7]
    records, pending, pos = [], b"", 7
    while pos + 7 <= len(data):
        left = 32768 - pos % 32768
        if left < 7:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        assert kind in (1, 2, 3, 4), (path, pos, kind)
        pending += data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    assert pending == b""
    return records


def item_key(item: Any) -> str:
    return item.key or ".".join(item.nested_key)


def read_wandb_run(wandb: Any, folder: Path) -> dict[str, Any]:
    """What one offline run folder holds: the run's id and project, its configuration, its history
    rows by step and its summary (the last value of each key). Offline, wandb's service may still
    hold the end of a finished run's file; the file is whole once the service stops (as it does
    when the process exits), so it is stopped first."""
    wandb.teardown()
    (path,) = folder.glob("run-*.wandb")
    run, config, history, summary = None, {}, {}, {}
    for record in wandb_records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            config.update({item_key(u): json.loads(u.value_json) for u in record.run.config.update})
        elif kind == "config":
            config.update({item_key(u): json.loads(u.value_json) for u in record.config.update})
        elif kind == "history":
            row = {item_key(i): json.loads(i.value_json) for i in record.history.item}
            history.setdefault(row["_step"], {}).update(row)
        elif kind == "summary":
            summary.update({item_key(u): json.loads(u.value_json) for u in record.summary.update})
    assert run is not None, path
    return {
        "id": run.run_id,
        "project": run.project,
        "name": run.display_name,
        "resumed": run.resume,
        "config": config,
        "history": history,
        "summary": summary,
    }


def test_the_real_wandb_logs_offline_into_the_run_directory_and_a_resumed_run_continues_it(
    tiny_overrides, tmp_path, offline_wandb
):
    steps = ["train.threads=1", "train.checkpoint_every=10", "log.wandb=true", "log.completions_every=2"]
    trainer = Trainer(resolve_config(overrides=[*tiny_overrides, *steps, "train.steps=2"]))
    fit(trainer, show_progress=False)
    run_dir = tmp_path / "run"
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    evals = read_jsonl(run_dir / "eval.jsonl")
    (first_folder,) = (run_dir / "wandb").glob("offline-run-*")
    assert not (tmp_path / "wandb-home" / "wandb_dir").exists()  # the run directory, not $WANDB_DIR
    first = read_wandb_run(offline_wandb, first_folder)

    assert first["id"] == wandb_run_id(run_dir) and first["name"] == "run" and first["project"] == "grpozoo"
    assert first["config"]["recipe"] == "grpo" and first["config"]["log"]["wandb"] is True
    assert first["config"]["train"]["steps"] == 2
    assert first["config"]["rollout"] == trainer.cfg.model_dump(mode="json")["rollout"]

    history = first["history"]
    # the evaluation before, two steps (the last with the evaluation after)
    assert sorted(history) == [0, 1, 2]
    for m in metrics:  # every number of metrics.jsonl, by name, and nothing else
        logged = {
            k: v for k, v in history[m["step"]].items() if not k.startswith(("_", "completions", "eval/"))
        }
        assert logged == pytest.approx(numeric(m))
        assert {"reward/mean", "loss", "time/step_s"} <= logged.keys()
    assert history[0]["eval/accuracy"] == pytest.approx(evals[0]["accuracy"])
    assert history[2]["eval/accuracy"] == pytest.approx(evals[-1]["accuracy"])
    assert not any(k.startswith("completions") for k in history[1])  # a table every 2 steps
    table_path = history[2]["completions.path"]
    table = json.loads((first_folder / "files" / table_path).read_text())
    assert table["columns"] == ["step", "prompt", "completion", "reward", "advantage"]
    samples = read_jsonl(run_dir / "samples.jsonl")[6:]  # step 2's: 2 prompts × 3 completions
    assert [row[0] for row in table["data"]] == [2] * 6
    assert [row[2] for row in table["data"]] == [s["completion"] for s in samples]
    assert [row[3] for row in table["data"]] == pytest.approx([s["reward"] for s in samples], abs=1e-4)

    summary = first["summary"]
    assert summary["reward/mean"] == pytest.approx(metrics[-1]["reward/mean"])
    assert summary["loss"] == pytest.approx(metrics[-1]["loss"])
    assert summary["eval/accuracy"] == pytest.approx(evals[-1]["accuracy"])
    assert summary["_step"] == 2

    resumed = Trainer(
        resolve_config(overrides=[*tiny_overrides, *steps, "train.steps=3"]), run_dir=run_dir, resume=True
    )
    fit(resumed, show_progress=False)
    metrics = read_jsonl(run_dir / "metrics.jsonl")
    assert [m["step"] for m in metrics] == [1, 2, 3]
    (second_folder,) = set((run_dir / "wandb").glob("offline-run-*")) - {first_folder}
    second = read_wandb_run(offline_wandb, second_folder)
    assert second["id"] == first["id"] and second["resumed"]  # `wandb sync` joins both into one run
    assert sorted(second["history"]) == [3]
    assert second["history"][3]["reward/mean"] == pytest.approx(metrics[-1]["reward/mean"])
    assert second["config"]["train"]["steps"] == 3


def test_without_a_wandb_login_the_trainer_stops_before_any_step_with_one_line(
    tiny_overrides, tmp_path, monkeypatch, offline_wandb
):
    monkeypatch.setenv("WANDB_MODE", "online")  # no WANDB_API_KEY, no netrc, an empty settings folder
    cfg = resolve_config(overrides=[*tiny_overrides, "log.wandb=true"])
    with pytest.raises(MachineSetupError) as stopped:
        Trainer(cfg)
    message = str(stopped.value)
    assert "\n" not in message
    assert "not logged in to Weights & Biases: run `wandb login`" in message
    assert "set WANDB_MODE=offline" in message
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
    assert wandb_core_processes() == []  # its service stopped with it


def test_a_wandb_too_old_to_skip_its_login_prompt_is_refused(tiny_overrides, tmp_path, monkeypatch):
    old = types.ModuleType("wandb")
    old.__version__ = "0.25.0"
    old.login = lambda key=None, relogin=None, host=None, force=None, timeout=None, verify=False: True
    monkeypatch.setitem(sys.modules, "wandb", old)
    cfg = resolve_config(overrides=[*tiny_overrides, "log.wandb=true"])
    with pytest.raises(ImportError, match=r"needs wandb 0.30 or newer \(this is 0.25.0\): pip install -U"):
        RunLoggers(cfg, tmp_path)


def test_wandb_run_ids_are_stable_per_directory_and_use_only_allowed_characters(tmp_path):
    assert wandb_run_id(tmp_path / "grpo-seed0") == wandb_run_id(tmp_path / "x" / ".." / "grpo-seed0")
    assert wandb_run_id(tmp_path / "a" / "grpo-seed0") != wandb_run_id(tmp_path / "b" / "grpo-seed0")
    odd = wandb_run_id(tmp_path / ("exp:1;b,#?'" + "x" * 80))
    assert odd.startswith("exp-1-b----x") and len(odd) <= 64
    assert all(c.isalnum() or c in "._-" for c in odd)
