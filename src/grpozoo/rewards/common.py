"""Helpers shared by the built-in rewards: column checks, groups, correctness, pluggable functions."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any


def need_column(reward: str, name: str, values: Sequence[Any] | None, size: int) -> Sequence[Any]:
    """``values`` checked to be a column of ``size`` entries; a clear error naming the fix otherwise."""
    if values is None:
        raise ValueError(
            f"reward {reward!r} needs the column {name!r}, which this batch does not have; the trainer "
            f"provides it (grpozoo.training.step_records.reward_columns), or pass {name}=[...] when calling it directly"
        )
    if len(values) != size:
        raise ValueError(
            f"reward {reward!r}: column {name!r} has {len(values)} values for {size} completions"
        )
    return values


def groups_of(group_id: Sequence[Any]) -> dict[Any, list[int]]:
    """The batch indices of each group, in batch order: ``{group: [i, …]}``."""
    out: dict[Any, list[int]] = {}
    for index, group in enumerate(group_id):
        out.setdefault(group, []).append(index)
    return out


def correct_flags(reward: str, task_score: Sequence[Any] | None, size: int, threshold: float) -> list[bool]:
    """Which completions the task's verifier marks correct (``task_score >= threshold``)."""
    scores = need_column(reward, "task_score", task_score, size)
    return [score is not None and float(score) >= threshold for score in scores]


def check_range(reward: str, name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"reward {reward!r}: {name}={value!r} must lie in [{low}, {high}]")


def load_function(reward: str, name: str, spec: str | Callable[..., Any]) -> Callable[..., Any]:
    """A pluggable function given as a callable, ``module:function`` or ``path/file.py:function``."""
    if callable(spec):
        return spec
    if not isinstance(spec, str) or ":" not in spec:
        raise ValueError(
            f"reward {reward!r}: {name}={spec!r} must be a callable or 'module:function' / 'file.py:function'"
        )
    from grpozoo.rewards.combine import load_reward_function

    return load_reward_function(spec)
