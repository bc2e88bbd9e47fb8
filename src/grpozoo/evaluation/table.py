"""A held-out evaluation as a readable terminal table, and as strict JSON."""

from __future__ import annotations

import json
import math
import re
from typing import Any

from rich.console import Group
from rich.table import Table

SPARK = " ▁▂▃▄▅▆▇█"


def strict_json(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by ``None``, so ``json.dumps`` writes standard
    JSON (``null``) that any reader accepts."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(v) for v in value]
    return value


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(strict_json(result), indent=2)


def sparkline(counts: list[int]) -> str:
    top = max(counts, default=0)
    if top == 0:
        return SPARK[0] * len(counts)
    return "".join(SPARK[0 if c == 0 else max(1, round(c / top * (len(SPARK) - 1)))] for c in counts)


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def ks_of(result: dict[str, Any]) -> list[int]:
    return sorted(int(m.group(1)) for key in result if (m := re.fullmatch(r"pass@(\d+)", key)))


def eval_table(result: dict[str, Any], title: str) -> Group:
    """The metrics grouped by what they say, each with its unit and a one-line meaning, and the
    estimators over k samples as a table of their own (one row per k)."""
    table = Table(title=title, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    table.add_column("what it means", overflow="fold", style="dim")
    n = result["samples_per_prompt"]
    table.add_row("prompts × samples", f"{result['prompts']} × {n}", "held-out prompts, samples of each")
    table.add_row(
        "accuracy",
        f"{_num(result['accuracy'])} ± {_num(result['accuracy_stderr'])}",
        "share of samples the verifier judges right (± standard error over prompts)",
    )
    if "answered_rate" in result:
        table.add_row(
            "answered", _num(result["answered_rate"]), "share of samples with an extractable answer"
        )
    table.add_section()
    table.add_row("length (tokens)", _num(result["mean_length"], 1), "mean completion length")
    if "length_p50" in result:
        table.add_row(
            "length p10 / p50 / p90",
            " / ".join(_num(result[f"length_p{q}"], 1) for q in (10, 50, 90)),
            f"percentiles; min {result['length_min']}, max {result['length_max']}",
        )
    hist = result.get("length_histogram")
    if hist:
        table.add_row(
            "length histogram",
            sparkline(hist["counts"]),
            f"{len(hist['counts'])} bins from 0 to {hist['edges'][-1]:g} tokens",
        )
    table.add_row("truncated", _num(result["truncation_rate"]), "share that hit the token budget before EOS")
    if "accuracy_per_1k_tokens" in result:
        table.add_row("accuracy per 1k tokens", _num(result["accuracy_per_1k_tokens"], 2),
                      "length efficiency: 1000 × accuracy / mean length")
    if "mean_entropy" in result:
        table.add_section()
        table.add_row(
            "entropy (nats/token)",
            _num(result["mean_entropy"]),
            "mean entropy of the sampling distribution per token",
        )
        table.add_row(
            "mean log-prob",
            _num(result["mean_logprob"]),
            "the model's per-token log-likelihood of its own samples (its confidence)",
        )
        table.add_row(
            "calibration AUC",
            _num(result["calibration_auc"]),
            "does that confidence tell right from wrong? 1 perfect, 0.5 chance, n/a if all right or all wrong",
        )
        table.add_row(
            "calibration AUC, per prompt",
            _num(result["calibration_auc_within_prompt"]),
            "the same over pairs of samples of one prompt",
        )
    by_k = Table(title="over k samples of a prompt", title_justify="left")
    by_k.add_column("k", justify="right")
    by_k.add_column("pass@k\n(≥ 1 right)", justify="right")
    by_k.add_column("maj@k\n(majority answer right)", justify="right")
    by_k.add_column("pass^k\n(all right)", justify="right")
    for k in ks_of(result):
        by_k.add_row(str(k), *(_num(result.get(f"{m}{k}")) for m in ("pass@", "maj@", "pass^")))
    return Group(table, by_k)


def tasks_table(tasks: dict[str, dict[str, Any]]) -> Table:
    """One row per task of a benchmark: its prompts, accuracy and pass@n, length and truncation."""
    table = Table(title="per task", title_justify="left")
    for column in ("task", "prompts × samples", "accuracy", "pass@n", "length (tokens)", "truncated"):
        table.add_column(column, justify="left" if column == "task" else "right")
    for name, r in tasks.items():
        n = r["samples_per_prompt"]
        table.add_row(
            name, f"{r['prompts']} × {n}", f"{_num(r['accuracy'])} ± {_num(r['accuracy_stderr'])}",
            _num(r.get(f"pass@{n}")), _num(r["mean_length"], 1), _num(r["truncation_rate"]),
        )  # fmt: skip
    return table
