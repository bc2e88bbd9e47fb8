"""A fixed-seed run gives the same numbers as the metrics recorded in ``data/fixed_seed_metrics.json``:
a refactoring of the step (the rollout side, the learner side, the engines) must change no number.

The file was written by ``python tests/training/test_fixed_seed_metrics.py`` before the trainer
was split into a rollout side and a learner side; rerun it only for a change meant to alter the
numbers, and say why in the commit. ``grpo_full_kl`` was recorded anew once the sampler of a full
fine-tuning run drew from the updated weights (a fused optimiser step had left them stale)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest

RECORDED = Path(__file__).parent / "data" / "fixed_seed_metrics.json"
# runs that reach every on-demand field and stage: ReMax's greedy baseline, segment values,
# refilling and after-advantages filters, hints, old log-probs of several iterations, a reference
# model under full fine-tuning
RUNS = {
    "grpo": ["recipe=grpo"],
    "remax": ["recipe=remax"],
    "segment_spo": ["recipe=segment_spo"],
    "dapo": ["recipe=dapo"],
    "scaf_grpo": ["recipe=scaf_grpo", "hint_task"],
    "dppo": ["recipe=dppo"],
    "grpo_full_kl": ["recipe=grpo", "model.lora.enabled=false", "algorithm.kl.coef=0.05"],
}
# wall-clock figures differ from run to run
UNTIMED = ("time/", "tokens_per_s")


def run_metrics(tiny_overrides: list[str], tmp_path: Path, name: str) -> list[dict[str, float]]:
    from training.test_group_filters import write_hint_task
    from training.test_trainer import make_trainer

    extra = [o for o in RUNS[name] if o != "hint_task"]
    if "hint_task" in RUNS[name]:
        extra.append(f"task.name={write_hint_task(tmp_path)}")
    trainer = make_trainer(tiny_overrides, *extra, "train.steps=2", "rollout.max_new_tokens=6")
    return [
        {k: v for k, v in trainer.train_step().items() if not k.startswith(UNTIMED)} for _ in range(2)
    ]


@pytest.mark.parametrize("name", list(RUNS))
def test_a_fixed_seed_run_gives_the_recorded_metrics(tiny_overrides, tmp_path, name):
    recorded = json.loads(RECORDED.read_text())[name]
    got = run_metrics(tiny_overrides, tmp_path, name)
    # metrics added since (the engine's weight version, the sampler/learner gap) are new keys
    assert all(set(old) <= set(new) for new, old in zip(got, recorded, strict=True))
    for step, (new, old) in enumerate(zip(got, recorded, strict=True), start=1):
        for key, value in old.items():
            if isinstance(value, float) and math.isnan(value):
                assert math.isnan(new[key]), (step, key)
            else:
                assert new[key] == pytest.approx(value, rel=1e-4, abs=1e-6), (step, key)


if __name__ == "__main__":  # record the metrics anew
    sys.path.insert(0, str(Path(__file__).parent.parent))
    import tempfile

    from tiny import build_tiny_model, tiny_run_overrides

    records = {}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_tiny_model(Path(tmp) / "model")
        for name in RUNS:
            run_dir = Path(tmp) / name
            run_dir.mkdir()
            overrides = tiny_run_overrides(model, run_dir / "run")
            records[name] = run_metrics(overrides, run_dir, name)
    RECORDED.write_text(json.dumps(records, indent=1, sort_keys=True) + "\n")
    print(f"wrote {RECORDED}")
