"""Any reasoning-gym task by name; its own ``score_answer`` is the verifier. Tasks whose metadata
fixes a worked solution (:mod:`grpozoo.tasks.solutions`) carry it, and hints from it, in each row."""

from __future__ import annotations

from typing import Any

from grpozoo.errors import ConfigError
from grpozoo.registry import did_you_mean
from grpozoo.tasks.base import Task, split_disjoint
from grpozoo.tasks.hints import hints_from_solution
from grpozoo.tasks.solutions import worked_solution


def reasoning_gym_names() -> list[str]:
    from reasoning_gym.factory import DATASETS

    return sorted(DATASETS)


class ReasoningGymTask(Task):
    """Seeded procedural rows: the held-out split is drawn first, and train rows that repeat a
    held-out question are skipped, so the two never overlap."""

    def __init__(self, cfg):
        super().__init__(cfg)
        import reasoning_gym

        names = reasoning_gym_names()
        if cfg.name not in names:
            raise ConfigError(
                f"unknown task {cfg.name!r}: not a data file and not a reasoning-gym task."
                f"{did_you_mean(cfg.name, names)} Give a .jsonl/.json/.parquet/.csv file, a directory written by "
                f"datasets' save_to_disk, a cached hub dataset id (org/name), or one of: {', '.join(names)}"
            )
        dataset_only = [
            key for key, unset in (("columns", {}), ("reference_format", "auto"), ("split", "train"), ("subset", None))
            if getattr(cfg, key) != unset
        ]
        if dataset_only:
            raise ConfigError(
                f"{', '.join(f'task.{key}' for key in dataset_only)}: for datasets (files, save_to_disk "
                f"directories, hub ids) only; reasoning-gym task {cfg.name!r} has its own columns and answers"
            )
        self.name = cfg.name
        size = cfg.train_size + cfg.eval_size
        try:
            self.dataset = reasoning_gym.create_dataset(cfg.name, size=size, seed=cfg.seed, **cfg.params)
        except (TypeError, AssertionError) as error:  # reasoning-gym checks its configuration with assert
            raise ConfigError(f"task.params for reasoning-gym task {cfg.name!r}: {error}") from None
        rows = [self._row(entry) for entry in (self.dataset[i] for i in range(size))]
        self.train_rows, self.eval_rows = split_disjoint(rows, cfg.eval_size)

    def _row(self, entry: dict[str, Any]) -> dict[str, Any]:
        """A row: the question, the answer, reasoning-gym's entry (for its scorer) and, where the
        task's metadata gives one, the worked ``solution`` with the ``hints`` derived from it."""
        row = {"prompt": entry["question"], "answer": str(entry["answer"]), "entry": entry}
        solution = worked_solution(self.name, entry)
        if solution is not None:
            row["solution"] = solution
            row["hints"] = hints_from_solution(solution)
        return row

    def score(self, completion: str, row: dict[str, Any]) -> float:
        answer = self.extract(completion)
        if answer is None:
            return 0.0
        return float(self.dataset.score_answer(answer, row["entry"]))
