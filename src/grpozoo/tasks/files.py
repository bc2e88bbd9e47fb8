"""Tasks from JSONL/JSON/Parquet/CSV files (through ``datasets``), scored by math-verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from grpozoo.errors import ConfigError, DataError
from grpozoo.tasks.dataset_task import DatasetTask

FILE_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}

# What a readable file of each kind holds, for the error when one is not.
EXPECTED = {
    ".jsonl": 'one JSON object per line, e.g. {"prompt": "2 + 2 =", "answer": "4"}',
    ".json": 'a JSON list of objects, e.g. [{"prompt": "2 + 2 =", "answer": "4"}], or one object per line',
    ".csv": "a header line naming the columns (prompt or messages, and answer), then one row per line",
    ".parquet": "a Parquet table with a prompt (or messages) column and an answer column",
}


class FileTask(DatasetTask):
    """A file with a ``prompt`` (text) or ``messages`` (chat) column and an ``answer`` column (after
    ``task.columns``); see :class:`~grpozoo.tasks.dataset_task.DatasetTask` for the held-out rows,
    the reference answers and the scoring."""

    def __init__(self, cfg):
        super().__init__(cfg)
        path = Path(cfg.name)
        if not path.exists():
            raise FileNotFoundError(f"task file {cfg.name!r} does not exist")
        if path.suffix.lower() not in FILE_SUFFIXES:
            raise DataError(
                f"task file {cfg.name!r}: unsupported suffix; use one of {', '.join(FILE_SUFFIXES)}"
            )
        if cfg.split != "train" or cfg.subset is not None:
            raise ConfigError(
                f"task file {cfg.name!r} holds one table: task.split and task.subset pick a split or a "
                f"configuration of a saved dataset directory or a hub dataset; leave them unset"
            )
        self.name = path.stem
        self._set_rows(f"task file {cfg.name!r}", read_rows(path))


def read_rows(path: Path) -> list[dict[str, Any]]:
    """The rows of a data file, or a :class:`DataError` naming the file, where it stops being valid
    (the line of a JSON file) and what it should hold."""
    import datasets

    suffix = path.suffix.lower()
    if not path.read_bytes().strip():
        raise DataError(f"task file {str(path)!r} is empty: expected {EXPECTED[suffix]}")
    try:
        data = datasets.load_dataset(FILE_SUFFIXES[suffix], data_files=str(path), split="train")
    except (datasets.exceptions.DatasetGenerationError, ValueError) as error:
        where = json_problem(path) if suffix in (".jsonl", ".json") else None
        raise DataError(
            f"task file {str(path)!r} cannot be read: {where or root_cause(error)}; "
            f"expected {EXPECTED[suffix]}"
        ) from error
    return [dict(row) for row in data]


def json_problem(path: Path) -> str | None:
    """Where a JSON file (one document, or one object per line) first stops being valid, or None
    when it parses."""
    text = path.read_text(errors="replace")
    if path.suffix.lower() == ".json":
        try:
            json.loads(text)
            return None
        except json.JSONDecodeError as error:
            whole = error
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as error:
            if path.suffix.lower() == ".json":  # not JSON lines either: where the document breaks
                return f"line {whole.lineno}, column {whole.colno}: {whole.msg}"
            return f"line {number} is not valid JSON ({error.msg} at column {error.colno})"
        if not isinstance(value, dict):
            return f"line {number} holds {line.strip()[:60]!r}, not a JSON object"
    return None


def root_cause(error: BaseException) -> str:
    """The innermost explicit cause of a ``datasets`` error: the parser's own message."""
    while error.__cause__ is not None:
        error = error.__cause__
    return str(error).rstrip(".")
