"""Append-only JSONL logs that a resumed run rewinds to its checkpoint."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def append_jsonl(path: Path, *records: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.writelines(json.dumps(record) + "\n" for record in records)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def rewind_jsonl(path: Path, last_step: int) -> None:
    """Drop records written after ``last_step`` (they belong to steps a resume will redo)."""
    if path.exists():
        kept = [r for r in read_jsonl(path) if r.get("step", 0) <= last_step]
        path.write_text("".join(json.dumps(r) + "\n" for r in kept))
