"""Task adapters: reasoning-gym tasks by name, data files, ``save_to_disk`` directories and cached
Hugging Face Hub datasets."""

from __future__ import annotations

from pathlib import Path

from grpozoo.tasks.base import Task
from grpozoo.tasks.dataset_task import DatasetTask, HubDatasetTask, SavedDatasetTask, is_hub_id
from grpozoo.tasks.files import FILE_SUFFIXES, FileTask
from grpozoo.tasks.reasoning_gym import ReasoningGymTask, reasoning_gym_names


def make_task(cfg) -> Task:
    """A task from ``cfg.task.name``: a ``save_to_disk`` directory, a data file (by suffix), a
    reasoning-gym task name, or else a hub dataset id (``org/name``) from the local cache."""
    name = cfg.name
    path = Path(name)
    if path.is_dir():
        return SavedDatasetTask(cfg)
    if path.suffix.lower() in FILE_SUFFIXES or path.exists():
        return FileTask(cfg)
    if is_hub_id(name) and name not in reasoning_gym_names():
        return HubDatasetTask(cfg)
    return ReasoningGymTask(cfg)


__all__ = [
    "Task", "DatasetTask", "FileTask", "SavedDatasetTask", "HubDatasetTask", "ReasoningGymTask", "make_task",
    "reasoning_gym_names",
]
