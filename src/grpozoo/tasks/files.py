"""Tasks from JSONL/JSON/Parquet/CSV files (through ``datasets``), scored by math-verify."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from grpozoo.rewards.math import math_equal
from grpozoo.tasks.base import Task, split_disjoint

FILE_SUFFIXES = {".jsonl": "json", ".json": "json", ".parquet": "parquet", ".csv": "csv"}


class FileTask(Task):
    """A file with a ``prompt`` (text) or ``messages`` (chat) column and an ``answer`` column.

    Rows are shuffled with ``task.seed``; the first ``eval_size`` are held out, and train rows
    with the same prompt as a held-out row are dropped. Every other column reaches the reward
    functions; a ``hints`` column (a list of hints, or a solution text) feeds guided rollouts
    (see :mod:`grpozoo.tasks.hints`).
    """

    def __init__(self, cfg):
        super().__init__(cfg)
        path = Path(cfg.name)
        if not path.exists():
            raise FileNotFoundError(f"task file {cfg.name!r} does not exist")
        kind = FILE_SUFFIXES.get(path.suffix.lower())
        if kind is None:
            raise ValueError(f"task file {cfg.name!r}: unsupported suffix; use one of {', '.join(FILE_SUFFIXES)}")
        import datasets

        data = datasets.load_dataset(kind, data_files=str(path), split="train")
        rows = [dict(row) for row in data]
        for index, row in enumerate(rows):
            check_row(row, index, cfg.name)
        random.Random(cfg.seed).shuffle(rows)
        if len(rows) <= cfg.eval_size:
            raise ValueError(
                f"task file {cfg.name!r} has {len(rows)} rows, not more than task.eval_size={cfg.eval_size}: "
                f"lower task.eval_size or add rows"
            )
        self.name = path.stem
        self.train_rows, self.eval_rows = split_disjoint(rows, cfg.eval_size)
        self.train_rows = self.train_rows[: cfg.train_size]

    def score(self, completion: str, row: dict[str, Any]) -> float:
        answer = self.extract(completion)
        return 0.0 if answer is None else float(math_equal(answer, str(row["answer"])))


def check_row(row: dict[str, Any], index: int, source: str) -> None:
    """A row needs a non-empty ``prompt`` or ``messages`` and an ``answer``; say which row lacks it."""
    if not row.get("prompt") and not row.get("messages"):
        raise ValueError(
            f"{source}: row {index} has no 'prompt' (text) or 'messages' (chat) column value; "
            f"its columns: {', '.join(row)}"
        )
    if row.get("answer") is None or str(row["answer"]).strip() == "":
        raise ValueError(f"{source}: row {index} has no 'answer' value; its columns: {', '.join(row)}")
