"""Task adapters: reasoning-gym tasks by name, and JSONL/Parquet/CSV files."""

from __future__ import annotations

from pathlib import Path

from grpozoo.tasks.base import Task
from grpozoo.tasks.files import FILE_SUFFIXES, FileTask
from grpozoo.tasks.reasoning_gym import ReasoningGymTask, reasoning_gym_names


def make_task(cfg) -> Task:
    """A task from ``cfg.task.name``: a data file (by suffix) or a reasoning-gym task name."""
    name = cfg.name
    if Path(name).suffix.lower() in FILE_SUFFIXES or Path(name).exists():
        return FileTask(cfg)
    return ReasoningGymTask(cfg)


__all__ = ["Task", "FileTask", "ReasoningGymTask", "make_task", "reasoning_gym_names"]
