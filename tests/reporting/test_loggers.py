"""TensorBoard and trackio beside metrics.jsonl: off by default (nothing imported, nothing
written); when on, they receive every step's metrics, the held-out evaluations and, every N
steps, a completion table."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from grpozoo.config import ConfigError, resolve_config
from grpozoo.reporting.loggers import RunLoggers, markdown_table, trackio_run_name
from grpozoo.reporting.metrics import read_jsonl
from grpozoo.training import Trainer, fit


@pytest.fixture(autouse=True)
def keep_torch_threads():
    import torch

    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def test_with_both_off_nothing_is_imported_or_written(tiny_overrides, tmp_path, monkeypatch):
    # an import of either package would now fail
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    monkeypatch.setitem(sys.modules, "trackio", None)
    cfg = resolve_config(overrides=tiny_overrides)
    assert (cfg.log.tensorboard, cfg.log.trackio, cfg.log.completions_every) == (False, False, 0)
    loggers = RunLoggers(cfg, tmp_path)
    assert not loggers.active
    loggers.log_step({"step": 1, "reward/mean": 0.5})
    loggers.log_eval({"step": 0, "accuracy": 0.25})
    loggers.close()
    assert list(tmp_path.iterdir()) == []


def test_a_completion_table_without_a_logger_is_refused():
    with pytest.raises(
        ConfigError,
        match=r"log.completions_every=5 logs a completion table to TensorBoard or "
        r"trackio, but both are off: set log.tensorboard=true",
    ):
        resolve_config(overrides=["log.completions_every=5"])


def test_a_missing_package_is_named_with_its_install_command(tiny_overrides, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "trackio", None)
    cfg = resolve_config(overrides=[*tiny_overrides, "log.trackio=true"])
    with pytest.raises(
        ImportError, match=r"log.trackio=true needs the trackio package .*pip install 'grpozoo\[trackio\]'"
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
