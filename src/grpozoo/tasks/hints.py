"""Hints for guided rollouts (Scaf-GRPO, GHPO, Guide-GRPO) come from a task column.

A task row provides them in a column, ``hints`` by default (``algorithm.guidance.column``): for
``tiered_hints`` a list of hints from the most abstract to the most concrete (``["Think about place
value.", "Add the units first, then the tens.", "7 + 5 = 12, carry the 1 …"]``) or a single hint as
text; for ``solution_prefix`` a worked solution as text (of a list, the last entry). In a CSV file a
column holds text, so one hint per row. Rows without a hint are simply not guided.

Where a row has a worked solution (a ``solution`` column, the worked text of a GSM8K-style or boxed
reference answer, or a reasoning-gym task's solution built from its metadata, see
:mod:`grpozoo.tasks.solutions`) and no hints, its hints are derived from the solution
(:func:`hints_from_solution`): growing prefixes of its steps, the last one the whole solution.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from grpozoo.errors import ConfigError, DataError

# the share of a solution's steps in each derived hint, from the least to the most concrete
HINT_FRACTIONS = (1 / 3, 2 / 3, 1.0)
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9$\\])")


def solution_steps(solution: str) -> list[str]:
    """The steps of a worked solution: its non-empty lines, or its sentences when it is one line."""
    lines = [line.strip() for line in solution.splitlines() if line.strip()]
    if len(lines) == 1:
        lines = [part.strip() for part in SENTENCE_END.split(lines[0]) if part.strip()]
    return lines


def hints_from_solution(solution: str, fractions: Sequence[float] = HINT_FRACTIONS) -> list[str]:
    """Tiered hints from a worked solution: for each fraction, the first ⌈fraction·n⌉ of its n steps
    (at least one), repeats dropped. The first tiers show the start of the way (a worked solution
    that opens with its plan gives the plan first); the last, with fraction 1, is the whole
    solution, which is also what ``solution_prefix`` guidance takes of a list."""
    steps = solution_steps(solution)
    tiers: list[str] = []
    for fraction in fractions:
        count = min(len(steps), max(1, math.ceil(fraction * len(steps) - 1e-9)))
        tier = "\n".join(steps[:count])
        if tier and (not tiers or tiers[-1] != tier):
            tiers.append(tier)
    return tiers


def attach_hints(row: dict[str, Any]) -> dict[str, Any]:
    """``row`` with ``hints`` derived from its ``solution`` when it has a solution and no hints."""
    solution = row.get("solution")
    if isinstance(solution, str) and solution.strip() and not _has_hint(row.get("hints")):
        row["hints"] = hints_from_solution(solution)
    return row


def require_hints(task, column: str, mode: str) -> None:
    """Fail at start-up when a guided recipe runs on a task whose train rows hold no hints in
    ``column``, or hold something other than text or a list of texts there; the message says how to
    provide them."""
    from grpozoo.tasks.solutions import SOLVERS

    rows = task.train_rows
    with_hints = [i for i, row in enumerate(rows) if _has_hint(row.get(column))]
    if not with_hints:
        columns = sorted({key for row in rows[:50] for key in row})
        raise ConfigError(
            f"algorithm.guidance.mode={mode!r} samples hinted rollouts for all-fail groups, with hints from the "
            f"task column {column!r}, but no train row of task {task.name!r} has one (its columns: "
            f"{', '.join(columns)}). Give a dataset with a {column!r} column holding "
            + (
                "a list of hints from abstract to concrete"
                if mode == "tiered_hints"
                else "a worked solution (its prefixes become the hints)"
            )
            + " or a 'solution' column (hints are derived from it; task.reference_format=gsm8k or boxed "
            "takes it from a worked reference answer), point algorithm.guidance.column at the column that "
            f"has them, use a reasoning-gym task with worked solutions ({', '.join(sorted(SOLVERS))}), or "
            "choose a recipe without guidance (--set algorithm.guidance.mode=off)"
        )
    for i, row in enumerate(rows):
        value = row.get(column)
        if value is None or isinstance(value, str):
            continue
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise DataError(
                f"task {task.name!r}: train row {i} has {column}={value!r}; hints must be text or a list of texts"
            )


def _has_hint(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip())
    if isinstance(value, list | tuple):
        return any(isinstance(v, str) and v.strip() for v in value)
    return False
