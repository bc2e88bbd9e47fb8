"""A finished or partial run directory read back: its configuration, step metrics and evaluations."""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from grpozoo.reporting.metrics import read_jsonl


@dataclass
class RunData:
    """What a report needs of one run, read from ``config.yaml``, ``metrics.jsonl`` and ``eval.jsonl``."""

    name: str  # the competitor (an arena entry: a recipe, possibly with overrides)
    seed: int
    run_dir: Path
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    evals: list[dict[str, Any]]

    @classmethod
    def read(cls, run_dir: Path, name: str | None = None, seed: int | None = None) -> RunData:
        config_file = run_dir / "config.yaml"
        config = yaml.safe_load(config_file.read_text()) if config_file.exists() else {}
        return cls(
            name=name or str(config.get("recipe", run_dir.name)),
            seed=int(seed if seed is not None else config.get("train", {}).get("seed", 0)),
            run_dir=run_dir,
            config=config,
            metrics=read_jsonl(run_dir / "metrics.jsonl"),
            evals=read_jsonl(run_dir / "eval.jsonl"),
        )

    @property
    def recipe(self) -> str:
        return str(self.config.get("recipe", self.name))

    @property
    def label(self) -> str:
        return f"{self.name}-seed{self.seed}"

    @property
    def steps_done(self) -> int:
        return int(self.metrics[-1]["step"]) if self.metrics else 0

    @property
    def steps_planned(self) -> int:
        return int(self.config.get("train", {}).get("steps", 0))

    @property
    def before(self) -> dict[str, Any] | None:
        """The held-out evaluation before the first step (step 0), if it was run."""
        return next((e for e in self.evals if e.get("step") == 0), None)

    @property
    def after(self) -> dict[str, Any] | None:
        """The last held-out evaluation after training started, if any."""
        later = [e for e in self.evals if e.get("step", 0) > 0]
        return later[-1] if later else None

    @property
    def budget(self) -> str:
        """Completions per step × token budget: ``8 × 4 × ≤24 tokens``."""
        r = self.config.get("rollout", {})
        return f"{r.get('prompts_per_step')} × {r.get('group_size')} × ≤{r.get('max_new_tokens')} tokens"

    def series(self, key: str) -> tuple[list[int], list[float]]:
        """Steps and finite values of one metric (a step without it, or with NaN, is left out)."""
        steps, values = [], []
        for m in self.metrics:
            v = m.get(key)
            if isinstance(v, int | float) and math.isfinite(v):
                steps.append(int(m["step"]))
                values.append(float(v))
        return steps, values

    def train_seconds(self) -> dict[int, float]:
        """Cumulative training seconds at the end of each step (sum of ``time/step_s``; held-out
        evaluation and checkpointing excluded)."""
        out, total = {}, 0.0
        for m in self.metrics:
            total += float(m.get("time/step_s", 0.0))
            out[int(m["step"])] = total
        return out

    def mean_of(self, key: str) -> float:
        values = self.series(key)[1]
        return statistics.fmean(values) if values else math.nan

    def generated_tokens(self) -> float:
        """Completion tokens sampled over all steps (refill rounds and hinted rollouts included)."""
        return sum(float(m.get("completion_tokens", 0.0)) for m in self.metrics)


@dataclass(frozen=True)
class Spread:
    """Mean, sample standard deviation and range of one number across seeds."""

    values: tuple[float, ...]

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return statistics.fmean(self.values) if self.values else math.nan

    @property
    def std(self) -> float:
        return statistics.stdev(self.values) if self.n >= 2 else math.nan

    @property
    def low(self) -> float:
        return min(self.values) if self.values else math.nan

    @property
    def high(self) -> float:
        return max(self.values) if self.values else math.nan

    def format(self, digits: int = 3, compact: bool = False) -> str:
        """``0.450 ± 0.050 (0.400–0.500)`` over several seeds (``compact``: without the range),
        ``0.450`` for one, ``n/a`` for none."""
        if not self.values:
            return "n/a"
        mean = f"{self.mean:.{digits}f}"
        if self.n == 1:
            return mean
        if compact:
            return f"{mean} ± {self.std:.{digits}f}"
        return f"{mean} ± {self.std:.{digits}f} ({self.low:.{digits}f}–{self.high:.{digits}f})"


def spread(values: list[float | None]) -> Spread:
    return Spread(tuple(float(v) for v in values if v is not None and math.isfinite(float(v))))
