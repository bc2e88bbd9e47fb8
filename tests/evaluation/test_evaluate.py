"""The held-out summary from hand-built samples, and a real evaluation of the tiny model."""

from __future__ import annotations

import math

import pytest

from grpozoo.config import resolve_config
from grpozoo.evaluation import EvalSamples, evaluate_held_out, summarize
from grpozoo.evaluation.table import dumps, eval_table, sparkline


def hand_samples() -> EvalSamples:
    # 2 prompts × 2 samples: prompt 0 right twice (answer "3"), prompt 1 one right ("5"), one wrong ("6")
    return EvalSamples(
        samples=2,
        max_new_tokens=10,
        correct=[True, True, True, False],
        answers=["3", "3", "5", "6"],
        lengths=[2, 4, 6, 10],
        truncated=[False, False, False, True],
        mean_logprobs=[-0.1, -0.2, -0.5, -0.3],
        entropy_sums=[1.0, 2.0, 3.0, 4.0],
    )


def test_summary_of_hand_built_samples():
    r = summarize(hand_samples())
    assert r["prompts"] == 2 and r["samples_per_prompt"] == 2
    assert r["accuracy"] == pytest.approx(0.75)  # per-prompt 1.0 and 0.5
    assert r["accuracy_stderr"] == pytest.approx(0.25)  # sample std 0.3536 / sqrt(2)
    assert r["pass@1"] == pytest.approx(0.75)
    assert r["pass@2"] == pytest.approx(1.0)
    assert r["pass^2"] == pytest.approx(0.5)  # only prompt 0 is right twice
    assert r["maj@1"] == pytest.approx(0.75)
    assert r["maj@2"] == pytest.approx(0.75)  # prompt 0: "3" wins; prompt 1: a "5"/"6" tie, 1/2
    assert r["answered_rate"] == 1.0
    assert r["mean_length"] == pytest.approx(5.5)
    assert r["length_p50"] == pytest.approx(5.0)
    assert (r["length_min"], r["length_max"]) == (2, 10)
    # bins of 1 token from 0 to 10: 2, 4, 6 fall in bins 2, 4, 6; 10 in the last (closed) bin
    assert r["length_histogram"]["counts"] == [0, 0, 1, 0, 1, 0, 1, 0, 0, 1]
    assert r["truncation_rate"] == pytest.approx(0.25)
    assert r["mean_entropy"] == pytest.approx(10.0 / 22)  # summed entropy over all tokens
    assert r["mean_logprob"] == pytest.approx(-0.275)
    # right {-0.1, -0.2, -0.5} vs wrong {-0.3}: 2 of 3 pairs won
    assert r["calibration_auc"] == pytest.approx(2 / 3)
    # only prompt 1 has both: right -0.5 below wrong -0.3
    assert r["calibration_auc_within_prompt"] == pytest.approx(0.0)


def test_table_and_json_of_a_summary():
    from rich.console import Console

    r = summarize(hand_samples())
    r["calibration_auc"] = math.nan
    console = Console(record=True, width=160)
    console.print(eval_table(r, "hand"))
    text = console.export_text()
    rows = {
        line.split("│")[1].strip(): line.split("│")[2:5] for line in text.splitlines() if line.count("│") == 5
    }
    assert [float(v) for v in rows["2"]] == [1.0, 0.75, 0.5]  # k = 2: pass@2, maj@2, pass^2
    assert [float(v) for v in rows["1"]] == [0.75, 0.75, 0.75]
    for words in ("0.750 ± 0.250", "calibration AUC", "n/a", "majority answer right"):
        assert words in text
    assert '"calibration_auc": null' in dumps(r)  # strict JSON: no NaN
    assert sparkline([0, 1, 4]) == " ▂█"


def test_evaluation_of_the_tiny_model_has_every_metric(tiny_overrides):
    from grpozoo.tasks import make_task
    from grpozoo.training.model import load_model, load_tokenizer

    cfg = resolve_config(overrides=tiny_overrides)
    model, tokenizer = load_model(cfg.model.name, "float32", "cpu"), load_tokenizer(cfg.model.name)
    r = evaluate_held_out(model, tokenizer, make_task(cfg.task), cfg)
    assert r["prompts"] == 6 and r["samples_per_prompt"] == 2
    for key in (
        "accuracy",
        "accuracy_stderr",
        "pass@1",
        "pass@2",
        "maj@1",
        "maj@2",
        "pass^1",
        "pass^2",
        "answered_rate",
        "length_p90",
        "truncation_rate",
        "mean_entropy",
        "mean_logprob",
        "calibration_auc",
        "calibration_auc_within_prompt",
    ):
        assert key in r, key
    assert r["pass@1"] == pytest.approx(r["accuracy"]) and r["pass^1"] == pytest.approx(r["accuracy"])
    assert r["mean_entropy"] > 0 and r["mean_logprob"] < 0
    assert sum(r["length_histogram"]["counts"]) == 12
    assert 1 <= r["length_min"] <= r["length_p50"] <= r["length_max"] <= 8
