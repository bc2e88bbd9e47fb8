"""``grpozoo.train`` from Python with a user reward function."""

from __future__ import annotations

import json
from pathlib import Path

import grpozoo


def test_train_from_python_with_a_reward_function(tiny_overrides, tmp_path):
    seen = {}

    def short_answers(completions, prompts, answer, **columns):
        seen["columns"] = sorted(columns)
        seen["answers"] = answer
        return [1.0 if len(c) < 5 else 0.0 for c in completions]

    summary = grpozoo.train(model=None, steps=1, overrides=tiny_overrides, reward=short_answers,
                            output_dir=tmp_path / "api-run", show_progress=False)
    run = Path(summary["run_dir"])
    assert run == tmp_path / "api-run"
    metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert "reward/short_answers" in metrics and "reward/task" not in metrics
    assert len(seen["answers"]) == 6 and "task_score" in seen["columns"]
    assert summary["eval_end"]["prompts"] == 6
