"""The comparison report from hand-made run directories: spreads across seeds, omitted curves,
unfinished runs; the numbers shown are the files' own."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from grpozoo.config import resolve_config, save_config
from grpozoo.reporting.comparison import ReportMeta, write_comparison_report
from grpozoo.reporting.runs import RunData, spread


def make_run(
    directory: Path, recipe: str, seed: int, accuracy_after: float, step_seconds: list[float]
) -> Path:
    run = directory / f"{recipe}-seed{seed}"
    run.mkdir(parents=True)
    save_config(
        resolve_config(overrides=[f"train.seed={seed}", f"train.steps={len(step_seconds)}"], recipe=recipe),
        run / "config.yaml",
    )
    metrics = [
        {
            "step": i + 1,
            "reward/mean": 0.1 * (i + 1) + seed / 100,
            "accuracy": 0.1 * i,
            "entropy": 1.0 - 0.1 * i,
            "completion_length": 10.0 + i,
            "completion_tokens": 40.0 * (i + 1),
            "clip_fraction": 0.0,
            "zero_variance_groups": 0.5,
            "time/step_s": s,
            "tokens_per_s": 100.0 * (seed + 1),
        }
        for i, s in enumerate(step_seconds)
    ]
    evals = [
        {"step": 0, "accuracy": 0.2, "accuracy_stderr": 0.05, "pass@1": 0.2, "pass@2": 0.3},
        {
            "step": len(step_seconds),
            "accuracy": accuracy_after,
            "accuracy_stderr": 0.05,
            "pass@1": accuracy_after,
            "pass@2": min(1.0, accuracy_after + 0.1),
        },
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(m) + "\n" for m in metrics))
    (run / "eval.jsonl").write_text("".join(json.dumps(e) + "\n" for e in evals))
    return run


def test_generated_tokens_count_every_sampled_token(tmp_path):
    # 40 + 80 + 120: each step's own count, refill rounds and hinted rollouts included by the trainer
    assert RunData.read(make_run(tmp_path, "dapo", 0, 0.3, [1.0, 1.0, 1.0])).generated_tokens() == 240.0


def test_spread_formats_mean_std_and_range():
    assert spread([0.4, 0.6]).format() == "0.500 ± 0.141 (0.400–0.600)"
    assert spread([0.4, 0.6]).format(compact=True) == "0.500 ± 0.141"
    assert spread([0.45]).format() == "0.450"
    assert spread([None, float("nan")]).format() == "n/a"


def test_a_report_of_two_recipes_over_two_seeds(tmp_path):
    runs = tmp_path / "runs"
    groups = {
        "grpo": [
            RunData.read(make_run(runs, "grpo", 0, 0.4, [1.0, 3.0])),
            RunData.read(make_run(runs, "grpo", 1, 0.6, [2.0, 2.0])),
        ],
        "dr_grpo": [RunData.read(make_run(runs, "dr_grpo", 0, 0.5, [4.0, 4.0]))],
    }
    meta = ReportMeta(
        title="test arena",
        directory=tmp_path,
        settings={"task": "chain_sum"},
        missing=["dr_grpo-seed1"],
        recipes={"grpo": "grpo", "dr_grpo": "dr_grpo"},
    )
    paths = write_comparison_report(groups, meta)
    page = paths["html"].read_text()
    md = paths["markdown"].read_text()

    # accuracy after: grpo seeds 0.4 and 0.6; change: +0.2 and +0.4
    assert (
        "| grpo | grpo | 2 | 0.200 ± 0.000 (0.200–0.200) | 0.500 ± 0.141 (0.400–0.600) | 0.300 ± 0.141 "
        "(0.200–0.400) |" in md
    )
    assert "| dr_grpo | dr_grpo | 1 | 0.200 | 0.500 | 0.300 |" in md
    assert "0.500 ± 0.141 (0.400–0.600)" in page
    # pass@2 before → after, mean ± std
    assert "| grpo | 0.200 ± 0.000 → 0.500 ± 0.141 | 0.300 ± 0.000 → 0.600 ± 0.141 |" in md
    # seconds per step: grpo seeds 2.0 and 2.0 → 2.00 ± 0.00; training time: 4 and 4; tokens/s 100 and 200
    assert "| grpo | 2.00 ± 0.00 (2.00–2.00) | 150.0 ± 70.7 (100.0–200.0) | 4.0 ± 0.0 (4.0–4.0) |" in md
    assert "| dr_grpo | 4.00 | 100.0 | 8.0 |" in md

    # no run logged a KL: that curve is left out and the page says why; every other plot is there
    assert "kl_vs_step.png" not in paths["plots"]
    assert "Not drawn: no run logged “kl” (no recipe here uses a KL term" in page
    assert len(paths["plots"]) == 11 and all(p.stat().st_size > 5000 for p in paths["plots"].values())
    assert page.count("<img ") == 11
    assert "Not yet trained (re-run the arena to continue): dr_grpo-seed1" in page

    with paths["csv"].open(newline="") as f:
        rows = list(csv.DictReader(f))
    assert [(r["competitor"], r["seed"]) for r in rows] == [("grpo", "0"), ("grpo", "1"), ("dr_grpo", "0")]
    assert [float(r["accuracy_after"]) for r in rows] == [0.4, 0.6, 0.5]
    assert [float(r["seconds_per_step"]) for r in rows] == [2.0, 2.0, 4.0]
    assert [float(r["final_reward_mean"]) for r in rows] == pytest.approx([0.2, 0.21, 0.2])
    assert rows[0]["mean_entropy_after"] == ""  # not in these evaluations: left empty, not invented


def test_a_report_with_no_run_yet_says_so(tmp_path):
    with pytest.raises(FileNotFoundError, match="no run has logged a step yet"):
        write_comparison_report({"grpo": []}, ReportMeta(title="t", directory=tmp_path))
