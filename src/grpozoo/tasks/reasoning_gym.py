"""Any reasoning-gym task by name; its own ``score_answer`` is the verifier."""

from __future__ import annotations

from typing import Any

from grpozoo.errors import ConfigError
from grpozoo.registry import did_you_mean
from grpozoo.tasks.base import Task, split_disjoint


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
                f"{did_you_mean(cfg.name, names)} Give a .jsonl/.parquet/.csv path or one of: {', '.join(names)}"
            )
        self.name = cfg.name
        size = cfg.train_size + cfg.eval_size
        try:
            self.dataset = reasoning_gym.create_dataset(cfg.name, size=size, seed=cfg.seed, **cfg.params)
        except (TypeError, AssertionError) as error:  # reasoning-gym checks its configuration with assert
            raise ConfigError(f"task.params for reasoning-gym task {cfg.name!r}: {error}") from None
        rows = [
            {"prompt": entry["question"], "answer": str(entry["answer"]), "entry": entry}
            for entry in (self.dataset[i] for i in range(size))
        ]
        self.train_rows, self.eval_rows = split_disjoint(rows, cfg.eval_size)

    def score(self, completion: str, row: dict[str, Any]) -> float:
        answer = self.extract(completion)
        if answer is None:
            return 0.0
        return float(self.dataset.score_answer(answer, row["entry"]))
