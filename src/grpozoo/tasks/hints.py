"""Hints for guided rollouts (Scaf-GRPO, GHPO, Guide-GRPO) come from a task column.

A data file (``.jsonl``, ``.json``, ``.parquet``) provides them in a column, ``hints`` by default
(``algorithm.guidance.column``): for ``tiered_hints`` a list of hints from the most abstract to the
most concrete (``["Think about place value.", "Add the units first, then the tens.", "7 + 5 = 12,
carry the 1 …"]``) or a single hint as text; for ``solution_prefix`` a worked solution as text (of a
list, the last entry). In a CSV file a column holds text, so one hint per row. Rows without a hint
are simply not guided. reasoning-gym tasks carry no hints.
"""

from __future__ import annotations

from typing import Any

from grpozoo.errors import ConfigError, DataError


def require_hints(task, column: str, mode: str) -> None:
    """Fail at start-up when a guided recipe runs on a task whose train rows hold no hints in
    ``column``, or hold something other than text or a list of texts there; the message says how to
    provide them."""
    rows = task.train_rows
    with_hints = [i for i, row in enumerate(rows) if _has_hint(row.get(column))]
    if not with_hints:
        columns = sorted({key for row in rows[:50] for key in row})
        raise ConfigError(
            f"algorithm.guidance.mode={mode!r} samples hinted rollouts for all-fail groups, with hints from the "
            f"task column {column!r}, but no train row of task {task.name!r} has one (its columns: "
            f"{', '.join(columns)}). Give a data file (.jsonl/.parquet) with a {column!r} column holding "
            + (
                "a list of hints from abstract to concrete"
                if mode == "tiered_hints"
                else "a worked solution (its prefixes become the hints)"
            )
            + ", point algorithm.guidance.column at the column that has them, or choose a recipe without "
            "guidance (--set algorithm.guidance.mode=off)"
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
